"""The worker registry: each worker upserts its ``WorkerRow`` from its sweeper thread, so the ops dashboard can
list workers and tell the live ones (seen within 2 × lease_seconds) from the gone ones.

The row's id is the ``worker_id`` the worker writes on the jobs, screens and alignments it claims, so the
dashboard can join a worker to what it is running.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from celery.signals import task_postrun, task_prerun

from service.config import Settings
from service.dashboard import repository as workers
from service.db import session_scope

log = logging.getLogger(__name__)

_current: str | None = None  # the task this process runs now (solo pool: at most one), set by Celery's signals


def worker_id(nodename: str) -> str:
    """How a worker names itself on the runs it claims: ``host:celery-node-name``."""
    return f"{socket.gethostname()}:{nodename}"


@dataclass(frozen=True)
class WorkerInfo:
    id: str
    hostname: str
    gpu_classes: str
    pid: int
    started_at: int

    @classmethod
    def this_process(cls, nodename: str, gpu_classes: str) -> WorkerInfo:
        return cls(worker_id(nodename), socket.gethostname(), gpu_classes, os.getpid(), int(time.time()))


def beat(settings: Settings, info: WorkerInfo, current_task: str | None = None, *, at: float | None = None) -> None:
    """Insert or refresh this worker's row. Only the worker itself writes its row, so read-then-write is safe."""
    seen = time.time() if at is None else at
    with session_scope(settings.database_url) as session:
        workers.upsert_worker(session, info.id, **asdict(info), last_seen_at=seen, current_task=current_task)


def current_task() -> str | None:
    return _current


def track_tasks(settings: Settings, info: WorkerInfo) -> Callable[[], None]:
    """Keep ``current_task()`` up to date from Celery's task signals and publish each change at once.
    Returns a function that stops tracking."""
    def publish(task: str | None) -> None:
        global _current
        _current = task
        try:
            beat(settings, info, task)
        except Exception:  # the registry is for watching; it must never fail a task
            log.exception("could not update the worker registry")

    def started(task: Any = None, args: Any = None, **_: Any) -> None:
        publish(f"{getattr(task, 'name', task)}({', '.join(map(str, args or ()))})"[:400])

    def ended(**_: Any) -> None:
        publish(None)

    task_prerun.connect(started, weak=False)
    task_postrun.connect(ended, weak=False)

    def stop() -> None:
        task_prerun.disconnect(started)
        task_postrun.disconnect(ended)

    return stop
