"""Claims are compare-and-set: one owner per job, duplicates do nothing, attempts are capped."""

from __future__ import annotations

import io
import json
import logging
import time
from types import SimpleNamespace

import pytest

from service import logs
from service.auth.service import create_key
from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import now
from service.migrate import upgrade
from service.orm import JobRow, OrgRow
from service.storage import open_store
from worker.fine_tuning import outcome
from worker.leases import Heartbeat, LeaseLost, claim_job, renew_job, sweep_jobs


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


def test_an_attempt_whose_lease_lapsed_publishes_no_adapter(settings: Settings, tmp_path) -> None:
    """Its successor may already have deployed the job's model from ``jobs/{id}/adapter/``."""
    job_id = add_job(settings)
    old = claim_job(settings, job_id, "w1")
    with session_scope(settings.database_url) as session:
        session.query(JobRow).filter_by(id=job_id).update({"lease_expires_at": time.time() - 1})
    sweep_jobs(settings, lambda _: None)
    assert claim_job(settings, job_id, "w2") is not None
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("{}")
    store = open_store(f"file://{tmp_path / 'objects'}")
    with pytest.raises(LeaseLost):
        result = SimpleNamespace(adapter_dir=tmp_path / "adapter")
        outcome.succeed(settings, store, old, get(settings, job_id), "ft:m:x", result, None)  # type: ignore[arg-type]
    assert store.list("jobs/") == []


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


def test_a_heartbeat_threads_lines_name_the_job_and_attempt_of_its_run() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("worker.leases")
    logger.addHandler(handler)
    beats: list[int] = []

    def blip() -> bool:  # the DB briefly unreachable: the beat raises, is logged, and the next one tries again
        beats.append(1)
        if len(beats) == 1:
            raise RuntimeError("connection refused")
        return False

    try:
        with logs.log_context(job_id="ftjob-1"):
            heartbeat = Heartbeat(0.01, blip, "lease-ftjob-1")
            logs.bind(attempt=3)  # bound after the heartbeat was made, as run_job does once it holds the lease
            with heartbeat:
                deadline = time.monotonic() + 5
                while len(beats) < 2 and time.monotonic() < deadline:
                    time.sleep(0.01)
    finally:
        logger.removeHandler(handler)
    [line] = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert line["message"] == "lease-ftjob-1: beat failed" and "connection refused" in line["exc"]
    assert (line.get("job_id"), line.get("attempt")) == ("ftjob-1", 3), line
