"""worker/fine_tuning/scheduling.py without a broker: which job a message claims, and when a wake-up is sent."""

from __future__ import annotations

import pytest

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.migrate import upgrade
from tests.service.fine_tuning.test_fair_scheduling import Jobs
from worker.fine_tuning import scheduling


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(home=tmp_path, lease_seconds=30)
    upgrade(s.database_url)
    return s


def test_a_message_claims_the_fairest_job_validating_it_first(settings: Settings) -> None:
    q = Jobs(settings)
    a1, a2 = q.add("a"), q.add("a")
    q.claim(a1)
    q.finish(a1)
    b1 = q.add("b", status="validating_files")
    validated = []

    def validate(job_id: str) -> None:
        validated.append(job_id)
        with session_scope(settings.database_url) as s:
            jobs.transition(s, job_id, ("validating_files",), "queued")

    lease = scheduling.claim_fair(settings, a2, "w", validate)  # a2's message, but b has not had a turn
    assert lease is not None and lease.job_id == b1 and validated == [b1]
    q.finish(b1)
    lease = scheduling.claim_fair(settings, b1, "w", validate)  # b1's own message, late: it starts a2 instead
    assert lease is not None and lease.job_id == a2
    assert scheduling.claim_fair(settings, a2, "w", validate) is None  # nothing left: the message is dropped


def test_a_wake_up_is_sent_only_where_running_limits_can_strand_a_job(settings: Settings, monkeypatch) -> None:
    sent: list[str] = []
    monkeypatch.setattr(scheduling, "resend_job", lambda _settings, job_id: sent.append(job_id))
    q = Jobs(settings)
    a1, a2 = q.add("a"), q.add("a")
    q.claim(a1)
    q.finish(a1)
    scheduling.wake_next(settings, a1)
    assert sent == []  # no limits: every queued job still has its own message
    q.cap("a", 1)
    scheduling.wake_next(settings, a1)
    assert sent == [a2]
    scheduling.wake_next(settings.model_copy(update={"quota_running_jobs": 0}), a1)
    assert sent == [a2, a2]  # a's override (1) wins over the provider default (0)
