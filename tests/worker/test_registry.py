"""The worker registry: one row per worker, refreshed by its beats, naming the task it runs."""

from __future__ import annotations

import socket
import time

import pytest
from celery.signals import task_postrun, task_prerun
from sqlalchemy import func, select

from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.orm import WorkerRow
from worker import registry


@pytest.fixture
def settings(tmp_path) -> Settings:
    s = Settings(home=tmp_path, lease_seconds=30)
    upgrade(s.database_url)
    return s


def rows(settings: Settings) -> list[WorkerRow]:
    with session_scope(settings.database_url) as session:
        found = list(session.scalars(select(WorkerRow).order_by(WorkerRow.id)))
        session.expunge_all()
        return found


def test_worker_id_matches_what_tasks_write_on_their_runs() -> None:
    info = registry.WorkerInfo.this_process("w1@box", "default,fast")
    assert info.id == registry.worker_id("w1@box") == f"{socket.gethostname()}:w1@box"
    assert (info.hostname, info.gpu_classes) == (socket.gethostname(), "default,fast")
    assert info.started_at <= time.time()


def test_beat_inserts_once_then_refreshes(settings: Settings) -> None:
    info = registry.WorkerInfo("h:w1@h", "h", "default", 101, 1_700_000_000)
    registry.beat(settings, info, at=1_700_000_010.5)
    (row,) = rows(settings)
    assert (row.id, row.hostname, row.gpu_classes, row.pid, row.started_at) == (
        "h:w1@h",
        "h",
        "default",
        101,
        1_700_000_000,
    )
    assert (row.last_seen_at, row.current_task) == (1_700_000_010.5, None)

    registry.beat(settings, info, "ftaas.process_job(ftjob-1)", at=1_700_000_040.0)
    (row,) = rows(settings)
    assert (row.last_seen_at, row.current_task) == (1_700_000_040.0, "ftaas.process_job(ftjob-1)")

    restarted = registry.WorkerInfo("h:w1@h", "h", "default,big", 202, 1_700_000_100)  # same name, new process
    registry.beat(settings, restarted)
    registry.beat(settings, registry.WorkerInfo("h:w2@h", "h", "big", 303, 1_700_000_100))
    first, second = rows(settings)
    assert (first.pid, first.gpu_classes, first.started_at, first.current_task) == (
        202,
        "default,big",
        1_700_000_100,
        None,
    )
    assert first.last_seen_at == pytest.approx(time.time(), abs=5) and second.id == "h:w2@h"
    with session_scope(settings.database_url) as session:
        assert session.scalar(select(func.count()).select_from(WorkerRow)) == 2


def test_task_signals_publish_the_current_task(settings: Settings) -> None:
    info = registry.WorkerInfo("h:w1@h", "h", "default", 1, 1)
    stop = registry.track_tasks(settings, info)
    try:
        task = type("Task", (), {"name": "ftaas.process_job"})()
        task_prerun.send(sender=task, task_id="t1", task=task, args=["ftjob-abc"], kwargs={})
        assert registry.current_task() == "ftaas.process_job(ftjob-abc)"
        assert rows(settings)[0].current_task == "ftaas.process_job(ftjob-abc)"
        task_postrun.send(sender=task, task_id="t1", task=task, args=["ftjob-abc"], kwargs={}, retval="ok")
        assert registry.current_task() is None and rows(settings)[0].current_task is None
    finally:
        stop()
    task_prerun.send(sender=task, task_id="t2", task=task, args=["ftjob-later"], kwargs={})
    assert registry.current_task() is None  # no longer tracked
