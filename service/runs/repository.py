"""All SQL shared by the tables whose rows are queued runs (jobs, file screens, provider alignments, job
re-evaluations).

Every such row carries ``enqueued_at`` (stamped at each publish, so the sweeper can re-send one no worker took).
Screens, alignments and re-evaluations are also owned by one worker at a time through their attempt number: a
worker claims ``queued → running`` by bumping ``attempts``, keeps ``heartbeat_at`` fresh, and writes only while the
row still carries its attempt (``worker/leases.py``). Fine-tuning jobs fence with a lease token instead
(``service/fine_tuning/repository.py``).
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from service.ids import now
from service.orm import AlignmentRow, EvaluationRow, FileScreenRow, JobRow

Run = type[FileScreenRow] | type[AlignmentRow] | type[EvaluationRow]  # tables whose rows are fenced by their attempt
Published = type[JobRow] | Run  # tables whose rows carry ``enqueued_at``


def mark_enqueued(session: Session, table: Published, object_id: str) -> None:
    """Stamp ``enqueued_at``: the row was handed to the broker now."""
    session.execute(update(table).where(table.id == object_id).values(enqueued_at=time.time()))


def unsent(table: Published, requeue_after_s: float) -> Any:
    """SQL condition: the row was never published, or its last publish is older than ``requeue_after_s``."""
    return or_(table.enqueued_at.is_(None), table.enqueued_at < time.time() - requeue_after_s)


def _stale(table: Run, lease_seconds: float) -> Any:
    return (table.status == "running") & (table.heartbeat_at < time.time() - lease_seconds)


def claim(session: Session, table: Run, run_id: str, worker_id: str, lease_seconds: float) -> int | None:
    """queued (or running with a stale heartbeat) → running; returns our attempt number, None if not ours."""
    attempts = session.scalar(
        select(table.attempts)
        .where(table.id == run_id, (table.status == "queued") | _stale(table, lease_seconds))
        .with_for_update(skip_locked=True)
    )
    if attempts is None:
        return None
    values: dict[str, Any] = {"status": "running", "attempts": attempts + 1}
    values.update(heartbeat_at=time.time(), worker_id=worker_id)
    if table is AlignmentRow or table is EvaluationRow:
        values["started_at"] = now()
    moved = session.execute(
        update(table).where(table.id == run_id, table.attempts == attempts).values(**values)
    ).rowcount  # type: ignore[attr-defined]
    return attempts + 1 if moved == 1 else None


def write(session: Session, table: Run, run_id: str, attempt: int, **values: Any) -> bool:
    """Update a running run we still own (progress, heartbeat); False if another attempt has it now."""
    moved = session.execute(
        update(table).where(table.id == run_id, table.attempts == attempt, table.status == "running").values(**values)
    ).rowcount  # type: ignore[attr-defined]
    return moved == 1


def stale_runs(session: Session, table: Run, lease_seconds: float) -> list[tuple[str, int]]:
    """(id, attempts) of the running runs whose worker stopped beating."""
    return [(run_id, attempts) for run_id, attempts in session.execute(
        select(table.id, table.attempts).where(_stale(table, lease_seconds))
    ).all()]


def release_stale(
    session: Session, table: Run, run_id: str, attempts: int, lease_seconds: float, **values: Any
) -> bool:
    """Move a stale run (still at ``attempts`` and still stale) to ``values``; whether it moved."""
    moved = session.execute(
        update(table)
        .where(table.id == run_id, table.attempts == attempts, _stale(table, lease_seconds))
        .values(**values)
    ).rowcount  # type: ignore[attr-defined]
    return moved == 1


def unsent_queued(session: Session, table: Published, statuses: tuple[str, ...], requeue_after_s: float) -> list[str]:
    """Ids of rows in ``statuses`` that no worker took within ``requeue_after_s`` of their last publish."""
    query = select(table.id).where(table.status.in_(statuses), unsent(table, requeue_after_s))
    return list(session.scalars(query).all())

