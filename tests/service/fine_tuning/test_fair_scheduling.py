"""The claim-time selection SQL (fine_tuning.repository.fair_candidates, org_has_room) on SQLite and PostgreSQL."""

from __future__ import annotations

import time
import uuid

import pytest

from service.auth.repository import get_or_create_org
from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.migrate import upgrade
from service.orm import BaseModelRow, JobRow, OrgQuotaRow
from worker.leases import claim_job


@pytest.fixture(params=["sqlite", "postgres"])
def settings(request: pytest.FixtureRequest, tmp_path) -> Settings:
    if request.param == "sqlite":
        s = Settings(home=tmp_path, lease_seconds=30)
    else:
        s = Settings(home=tmp_path, lease_seconds=30, database_url=request.getfixturevalue("postgres_url"))
    upgrade(s.database_url)
    return s


class Jobs:
    """Jobs of a GPU class of their own, so rows other tests left in a shared database don't take part."""

    def __init__(self, settings: Settings) -> None:
        self.settings, self.gpu = settings, f"fair-{uuid.uuid4().hex[:8]}"
        self.orgs: dict[str, str] = {}
        with session_scope(settings.database_url) as s:
            s.add(BaseModelRow(name=self.gpu, path="/x", aligned=True, gpu_class=self.gpu, created_at=now()))

    def add(self, org: str, status: str = "queued", model: str | None = None) -> str:
        job_id = new_id("ftjob-")
        with session_scope(self.settings.database_url) as s:
            self.orgs.setdefault(org, get_or_create_org(s, f"{org}-{self.gpu}").id)
            s.add(JobRow(id=job_id, org_id=self.orgs[org], model=model or self.gpu, training_file="file-x",
                         status=status, seed=1, created_at=now()))  # fmt: skip
        return job_id

    def fair(self, cap: int | None = None) -> list[str]:
        with session_scope(self.settings.database_url) as s:
            return jobs.fair_candidates(s, self.gpu, time.time(), cap, 10)

    def claim(self, job_id: str) -> None:
        assert claim_job(self.settings, job_id, "w") is not None

    def finish(self, job_id: str) -> None:
        with session_scope(self.settings.database_url) as s:
            assert jobs.transition(s, job_id, ("running",), "succeeded", lease_token=None)

    def cap(self, org: str, running: int) -> None:
        with session_scope(self.settings.database_url) as s:
            s.add(OrgQuotaRow(org_id=self.orgs[org], running_jobs=running, updated_at=now()))


def test_orgs_take_turns_even_with_one_worker(settings: Settings) -> None:
    q = Jobs(settings)
    a1, a2, a3 = q.add("a"), q.add("a"), q.add("a")
    b1 = q.add("b", status="validating_files")  # a job still validating is a candidate (validated when chosen)
    q.add("a", model="another-gpu-class")
    q.add("b", status="paused")
    assert q.fair() == [a1, a2, a3, b1]  # nobody runs or ran: oldest first
    q.claim(a1)
    assert q.fair() == [b1, a2, a3]  # fewest running first
    q.finish(a1)
    assert q.fair()[0] == b1  # both idle: the org never claimed goes first (round-robin, not FIFO)
    with session_scope(settings.database_url) as s:
        jobs.transition(s, b1, ("validating_files",), "queued")
    q.claim(b1)
    q.finish(b1)
    assert q.fair() == [a2, a3]


def test_running_limits_are_respected_at_selection_and_claim(settings: Settings) -> None:
    q = Jobs(settings)
    a1, a2, a3 = q.add("a"), q.add("a"), q.add("a")
    b1 = q.add("b")
    q.cap("a", 1)
    q.claim(a1)
    assert q.fair() == [b1]  # a is at its override
    assert claim_job(settings, a2, "w") is None  # a message naming a2 can't start it either
    with session_scope(settings.database_url) as s:
        assert jobs.status_of(s, a2) == "queued" and not jobs.org_has_room(s, a2, time.time(), None)
        assert jobs.org_has_room(s, b1, time.time(), 1)
    assert q.fair(cap=0) == []  # a provider default of 0 holds b too; a's override of 1 is still full
    q.claim(b1)
    q.finish(a1)
    assert q.fair(cap=1) == [a2, a3]  # b is at the default now, a has room again


def test_a_job_whose_lease_expired_is_claimable_and_not_counted_as_running(settings: Settings) -> None:
    q = Jobs(settings)
    a1, a2 = q.add("a"), q.add("a")
    q.cap("a", 1)
    q.claim(a1)
    assert q.fair() == []
    with session_scope(settings.database_url) as s:
        s.query(JobRow).filter_by(id=a1).update({"lease_expires_at": time.time() - 1})
    assert q.fair() == [a1, a2]  # its worker is gone: it resumes first (oldest), within a's limit of 1
    q.claim(a1)
    assert q.fair() == []
