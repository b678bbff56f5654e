"""Claims are compare-and-set: one owner per job, duplicates do nothing, attempts are capped."""

from __future__ import annotations

import time

import pytest

from service.auth.service import create_key
from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import now
from service.migrate import upgrade
from service.orm import JobRow, OrgRow
from worker.leases import LeaseLost, claim_job, renew_job, sweep_jobs


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(home=tmp_path, lease_seconds=30, max_attempts=2)
    upgrade(s.database_url)
    with session_scope(s.database_url) as session:
        create_key(session, "acme")
    return s


def add_job(settings: Settings, status: str = "queued") -> str:
    with session_scope(settings.database_url) as session:
        org = session.query(OrgRow).one()
        session.add(
            JobRow(
                id=f"ftjob-{time.monotonic_ns()}",
                org_id=org.id,
                model="m",
                training_file="file-x",
                status=status,
                seed=1,
                created_at=now(),
            )
        )
        return session.query(JobRow).order_by(JobRow.seq.desc()).first().id


def get(settings: Settings, job_id: str) -> JobRow:
    with session_scope(settings.database_url) as session:
        return jobs.get(session, job_id)


def test_only_one_claim_wins_and_renewal_needs_the_token(settings: Settings) -> None:
    job_id = add_job(settings)
    lease = claim_job(settings, job_id, "w1")
    assert lease is not None and get(settings, job_id).status == "running"
    assert claim_job(settings, job_id, "w2") is None  # duplicate delivery while the lease is live
    assert renew_job(settings, lease) is None
    with session_scope(settings.database_url) as session:
        jobs.request_control(session, job_id, "cancel", ("running",))
    assert renew_job(settings, lease) == "cancel"


def test_expired_lease_is_requeued_and_the_old_owner_is_locked_out(settings: Settings) -> None:
    job_id = add_job(settings)
    old = claim_job(settings, job_id, "w1")
    with session_scope(settings.database_url) as session:
        session.query(JobRow).filter_by(id=job_id).update({"lease_expires_at": time.time() - 1})
    sent: list[str] = []
    assert sweep_jobs(settings, sent.append) == [job_id] and sent == [job_id]
    new = claim_job(settings, job_id, "w2")
    assert new is not None and new.attempt == 2
    with pytest.raises(LeaseLost):
        renew_job(settings, old)


def test_attempts_are_capped(settings: Settings) -> None:
    job_id = add_job(settings)
    for _ in range(2):
        assert claim_job(settings, job_id, "w") is not None
        with session_scope(settings.database_url) as session:
            session.query(JobRow).filter_by(id=job_id).update({"lease_expires_at": time.time() - 1})
    assert claim_job(settings, job_id, "w") is None
    job = get(settings, job_id)
    assert job.status == "failed" and job.error["code"] == "attempts_exhausted"


def test_terminal_jobs_are_never_claimed(settings: Settings) -> None:
    for status in ("succeeded", "failed", "cancelled", "paused", "validating_files"):
        assert claim_job(settings, add_job(settings, status), "w") is None
