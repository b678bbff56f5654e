"""Screens and alignments: one owner per run, fenced writes, and the sweeper re-queues a run whose worker died."""

from __future__ import annotations

import time

import pytest

from service import broker
from service.config import Settings
from service.db import session_scope
from service.ids import now
from service.migrate import upgrade
from service.orm import AlignmentRow
from worker import leases


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(home=tmp_path, lease_seconds=30, max_attempts=2)
    upgrade(s.database_url)
    return s


def add_alignment(settings: Settings) -> str:
    run_id = f"balign_{time.monotonic_ns()}"
    with session_scope(settings.database_url) as session:
        session.add(AlignmentRow(id=run_id, name="m", spec={}, status="queued", created_at=now(), step=0, attempts=0))
    return run_id


def get(settings: Settings, run_id: str) -> AlignmentRow:
    with session_scope(settings.database_url) as session:
        row = session.get(AlignmentRow, run_id)
        session.expunge(row)
        return row


def age_heartbeat(settings: Settings, run_id: str, seconds: float) -> None:
    with session_scope(settings.database_url) as session:
        session.get(AlignmentRow, run_id).heartbeat_at = time.time() - seconds


def test_one_claim_wins_and_only_the_owner_writes(settings: Settings) -> None:
    run_id = add_alignment(settings)
    assert leases.claim_run(settings, AlignmentRow, run_id, "w1") == 1
    assert leases.claim_run(settings, AlignmentRow, run_id, "w2") is None  # duplicate delivery: nothing
    row = get(settings, run_id)
    assert (row.status, row.attempts, row.worker_id) == ("running", 1, "w1") and row.started_at
    assert leases.write_run(settings, AlignmentRow, run_id, 1, phase="aligning", step=3, total_steps=10)
    assert not leases.write_run(settings, AlignmentRow, run_id, 2, phase="someone else")
    assert leases.finish_run(settings, AlignmentRow, run_id, 1, result={"name": "m"})
    row = get(settings, run_id)
    assert (row.status, row.phase, row.step, row.result, row.error) == ("succeeded", "aligning", 3, {"name": "m"}, None)
    assert not leases.finish_run(settings, AlignmentRow, run_id, 1, error="late")  # finished runs stay finished


def test_sweeper_requeues_a_run_whose_worker_stopped_beating_then_gives_up(settings: Settings) -> None:
    run_id = add_alignment(settings)
    leases.claim_run(settings, AlignmentRow, run_id, "w1")
    resent: list[str] = []
    assert leases.sweep_runs(settings, AlignmentRow, resent.append) == []  # fresh heartbeat: alive
    age_heartbeat(settings, run_id, 31)
    assert leases.sweep_runs(settings, AlignmentRow, resent.append) == [run_id] and resent == [run_id]
    assert get(settings, run_id).status == "queued"
    assert not leases.finish_run(settings, AlignmentRow, run_id, 1, result={})  # the lost worker can't write
    assert leases.claim_run(settings, AlignmentRow, run_id, "w2") == 2
    age_heartbeat(settings, run_id, 31)
    assert leases.sweep_runs(settings, AlignmentRow, resent.append) == []  # max_attempts=2 reached
    row = get(settings, run_id)
    assert row.status == "failed" and "lost 2 times" in row.error and row.finished_at


def test_sweeper_resends_a_queued_run_no_worker_took(settings: Settings, monkeypatch) -> None:
    """A publish lost while the broker was down: the run stays queued, and after requeue_after_s it is sent again
    (the resend stamps enqueued_at, so it is not re-sent on every sweep)."""
    published: list[tuple] = []
    monkeypatch.setattr(broker, "send_task", lambda _s, task, run_id, gpu: published.append((task, run_id, gpu)))
    run_id = add_alignment(settings)
    with session_scope(settings.database_url) as session:
        session.get(AlignmentRow, run_id).enqueued_at = time.time()  # just published
    assert leases.sweep_runs(settings, AlignmentRow, lambda r: broker.resend_alignment(settings, r)) == []
    with session_scope(settings.database_url) as session:
        session.get(AlignmentRow, run_id).enqueued_at = time.time() - settings.requeue_after_s - 1
    assert leases.sweep_runs(settings, AlignmentRow, lambda r: broker.resend_alignment(settings, r)) == [run_id]
    assert published == [(broker.ALIGN_BASE_MODEL, run_id, "default")]
    assert get(settings, run_id).enqueued_at > time.time() - 5
    assert leases.sweep_runs(settings, AlignmentRow, lambda r: broker.resend_alignment(settings, r)) == []


def test_a_stale_running_run_can_be_claimed_directly(settings: Settings) -> None:
    run_id = add_alignment(settings)
    leases.claim_run(settings, AlignmentRow, run_id, "w1")
    age_heartbeat(settings, run_id, 31)
    assert leases.claim_run(settings, AlignmentRow, run_id, "w2") == 2  # a redelivery beats the sweeper to it


def test_heartbeat_thread_keeps_the_run_alive(settings: Settings) -> None:
    fast = settings.model_copy(update={"lease_seconds": 0.2})
    run_id = add_alignment(settings)
    leases.claim_run(fast, AlignmentRow, run_id, "w1")
    age_heartbeat(settings, run_id, 10)
    with leases.run_heartbeat(fast, AlignmentRow, run_id, 1):
        time.sleep(0.3)
        assert time.time() - get(settings, run_id).heartbeat_at < 0.2
