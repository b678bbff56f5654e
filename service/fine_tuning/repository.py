"""All SQL for fine-tuning jobs, their events and checkpoints. Shared by the API and the worker runner."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Exists, exists, func, select, update
from sqlalchemy.orm import Session

from service.ids import new_id, now
from service.orm import CheckpointRow, JobEventRow, JobRow
from service.pagination import page

TERMINAL = ("succeeded", "failed", "cancelled")


def get(session: Session, job_id: str, org_id: str | None = None) -> JobRow | None:
    query = select(JobRow).where(JobRow.id == job_id)
    if org_id is not None:
        query = query.where(JobRow.org_id == org_id)
    return session.scalar(query)


def get_by_idempotency_key(session: Session, org_id: str, key: str) -> JobRow | None:
    return session.scalar(select(JobRow).where(JobRow.org_id == org_id, JobRow.idempotency_key == key))


def add(session: Session, row: JobRow) -> JobRow:
    session.add(row)
    session.flush()
    return row


def _metadata_is(key: str, value: str) -> Exists:
    """SQLite: metadata[key] == value, matching the key as data. SQLAlchemy's `col[key]` formats the key into a
    JSON path ('$."key"'), which a key holding '"' or a NUL breaks; PostgreSQL's `->>` binds it, so it needs no
    such detour."""
    each = func.json_each(JobRow.job_metadata).table_valued("key", "value", "type")
    return exists().where(each.c.key == key, each.c.type == "text", each.c.value == value)


def list_page(
    session: Session, org_id: str | None, *, after: str | None, limit: int, metadata: dict[str, str]
) -> tuple[list[JobRow], bool]:
    query = select(JobRow)
    if org_id is not None:
        query = query.where(JobRow.org_id == org_id)
    sqlite = session.get_bind().dialect.name == "sqlite"
    for key, value in metadata.items():
        query = query.where(_metadata_is(key, value) if sqlite else JobRow.job_metadata[key].as_string() == value)
    return page(session, query, JobRow.seq, JobRow.id, after=after, limit=limit)


def transition(
    session: Session,
    job_id: str,
    from_status: tuple[str, ...],
    to_status: str,
    *,
    lease_token: str | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set: move the job only if it is still in one of `from_status` (and, for a worker, still
    holds `lease_token`). Returns whether it moved."""
    query = update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(from_status))
    if lease_token is not None:
        query = query.where(JobRow.lease_token == lease_token)
    result = session.execute(query.values(status=to_status, **values).execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


def request_control(session: Session, job_id: str, control: str, when_status: tuple[str, ...]) -> bool:
    """Ask the worker holding the job to cancel or pause at its next step."""
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status.in_(when_status))
        .values(control=control)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def add_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> JobEventRow:
    row = JobEventRow(
        id=new_id("ftevent-"),
        job_id=job_id,
        created_at=now(),
        level=level,
        message=message,
        type=type,
        data=data,
    )
    session.add(row)
    return row


def events_page(session: Session, job_id: str, *, after: str | None, limit: int) -> tuple[list[JobEventRow], bool]:
    query = select(JobEventRow).where(JobEventRow.job_id == job_id)
    return page(session, query, JobEventRow.seq, JobEventRow.id, after=after, limit=limit)


def checkpoints_page(
    session: Session, job_id: str, *, after: str | None, limit: int
) -> tuple[list[CheckpointRow], bool]:
    query = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
    return page(session, query, CheckpointRow.seq, CheckpointRow.id, after=after, limit=limit)


def poll_events(session: Session, job_id: str, after_seq: int) -> tuple[str | None, list[JobEventRow]]:
    """The job's status (None once deleted) and its events after `after_seq`, oldest first, for event streams.

    The status is read first: a cancel commits its transition and its last event together, so a terminal status
    seen here guarantees the events read next include that last event (read the other way round, a stream could
    end with [DONE] but without "Fine-tuning job cancelled")."""
    status = session.scalar(select(JobRow.status).where(JobRow.id == job_id))
    rows = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.seq > after_seq).order_by(JobEventRow.seq)
    ).all()
    return status, list(rows)
