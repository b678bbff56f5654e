"""Ownership of the worker's other runs (file screens, provider alignments): claim, heartbeat, finish, sweep.

A fine-tuning job writes all the time and fences every write with a lease token (``worker/lease.py``). A
screen or an alignment writes progress and one final result, so the attempt number is the fence: a worker
claims ``queued → running`` by bumping ``attempts``, keeps ``heartbeat_at`` fresh from a thread, and writes only
while the row still carries its attempt. A worker that dies leaves a stale heartbeat; every worker's sweeper
puts such a run back to ``queued`` and re-sends it, or fails it once ``max_attempts`` workers were lost. It also
re-sends a queued run that no worker took within ``requeue_after_s`` (``enqueued_at``, stamped at each publish).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import select, update

from service.config import Settings
from service.db import session_scope
from service.ids import now
from service.orm import AlignmentRow, FileScreenRow
from service.queue import unsent_for
from worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)

Run = type[FileScreenRow] | type[AlignmentRow]


def _stale(table: Run, settings: Settings) -> Any:
    return (table.status == "running") & (table.heartbeat_at < time.time() - settings.lease_seconds)


def claim(settings: Settings, table: Run, run_id: str, worker_id: str) -> int | None:
    """queued (or running with a stale heartbeat) → running; returns our attempt number, None if not ours."""
    with session_scope(settings.database_url) as session:
        attempts = session.scalar(
            select(table.attempts)
            .where(table.id == run_id, (table.status == "queued") | _stale(table, settings))
            .with_for_update(skip_locked=True)
        )
        if attempts is None:
            return None
        values: dict[str, Any] = {"status": "running", "attempts": attempts + 1}
        values.update(heartbeat_at=time.time(), worker_id=worker_id)
        if table is AlignmentRow:
            values["started_at"] = now()
        moved = session.execute(
            update(table).where(table.id == run_id, table.attempts == attempts).values(**values)
        ).rowcount  # type: ignore[attr-defined]
    return attempts + 1 if moved == 1 else None


def write(settings: Settings, table: Run, run_id: str, attempt: int, **values: Any) -> bool:
    """Update a running run we still own (progress, heartbeat); False if another attempt has it now."""
    with session_scope(settings.database_url) as session:
        moved = session.execute(
            update(table)
            .where(table.id == run_id, table.attempts == attempt, table.status == "running")
            .values(**values)
        ).rowcount  # type: ignore[attr-defined]
    return moved == 1


def finish(
    settings: Settings, table: Run, run_id: str, attempt: int, *, result: Any = None, error: str | None = None
) -> bool:
    """running → succeeded (with ``result``) or failed (with ``error``), if the run is still ours."""
    status = "failed" if error is not None else "succeeded"
    return write(settings, table, run_id, attempt, status=status, result=result, error=error, finished_at=now())


def heartbeat(settings: Settings, table: Run, run_id: str, attempt: int) -> Heartbeat:
    """Keeps ``heartbeat_at`` fresh from a background thread while the run works (and while it is ours)."""
    beat = lambda: write(settings, table, run_id, attempt, heartbeat_at=time.time())  # noqa: E731
    return Heartbeat(settings.lease_seconds / 4, beat, f"heartbeat-{run_id}")


def sweep(settings: Settings, table: Run, resend: Callable[[str], None]) -> list[str]:
    """Re-queue runs whose worker stopped beating (or fail them after ``max_attempts``), and re-send queued runs
    no worker took within ``requeue_after_s`` (e.g. the broker was down when they were published); returns the
    re-sent ids."""
    sent = []
    with session_scope(settings.database_url) as session:
        stale = session.execute(select(table.id, table.attempts).where(_stale(table, settings))).all()
        for run_id, attempts in stale:
            gave_up = attempts >= settings.max_attempts
            values: dict[str, Any] = {"status": "failed" if gave_up else "queued", "heartbeat_at": None}
            if gave_up:
                values.update(error=f"the worker was lost {attempts} times; giving up", finished_at=now())
            moved = session.execute(
                update(table)
                .where(table.id == run_id, table.attempts == attempts, _stale(table, settings))
                .values(**values)
            ).rowcount  # type: ignore[attr-defined]
            if moved == 1 and not gave_up:
                log.warning("%s %s: worker lost (no heartbeat); re-queued", table.__tablename__, run_id)
                sent.append(run_id)
        waiting = session.scalars(select(table.id).where(table.status == "queued", unsent_for(table, settings))).all()
        sent += [run_id for run_id in waiting if run_id not in sent]
    for run_id in sent:
        resend(run_id)
    return sent
