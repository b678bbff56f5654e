"""All SQL for fine-tuning jobs, their events and checkpoints. Shared by the API and the worker runner."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, update
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


def list_page(
    session: Session, org_id: str | None, *, after: str | None, limit: int, metadata: dict[str, str]
) -> tuple[list[JobRow], bool]:
    query = select(JobRow)
    if org_id is not None:
        query = query.where(JobRow.org_id == org_id)
    for key, value in metadata.items():
        query = query.where(JobRow.job_metadata[key].as_string() == value)
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
