"""All SQL for files."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from service.fine_tuning.repository import TERMINAL
from service.ids import now
from service.orm import FileRow, JobRow
from service.pagination import page

# Bound parameters per IN (...) list: well under SQLite's limit of 32766.
_IN_BATCH = 500


def _owned(org_id: str):  # type: ignore[no-untyped-def]
    return select(FileRow).where(FileRow.org_id == org_id)


def _live(org_id: str):  # type: ignore[no-untyped-def]
    return _owned(org_id).where(or_(FileRow.expires_at.is_(None), FileRow.expires_at > now()))


def get(session: Session, org_id: str, file_id: str, *, include_expired: bool = False) -> FileRow | None:
    query = _owned(org_id) if include_expired else _live(org_id)
    return session.scalar(query.where(FileRow.id == file_id))


def list_page(
    session: Session, org_id: str, *, after: str | None, limit: int, newest_first: bool, purpose: str | None
) -> tuple[list[FileRow], bool]:
    query = _live(org_id)
    if purpose:
        query = query.where(FileRow.purpose == purpose)
    return page(session, query, FileRow.seq, FileRow.id, after=after, limit=limit, newest_first=newest_first)


def add(session: Session, row: FileRow) -> FileRow:
    session.add(row)
    session.flush()
    return row


def remove(session: Session, row: FileRow) -> None:
    session.execute(delete(FileRow).where(FileRow.seq == row.seq))


def existing_ids(session: Session, file_ids: Collection[str]) -> set[str]:
    """The ids among ``file_ids`` that have a files row (expired or not), whatever their org."""
    ids = list(file_ids)
    found: set[str] = set()
    for start in range(0, len(ids), _IN_BATCH):
        found.update(session.scalars(select(FileRow.id).where(FileRow.id.in_(ids[start : start + _IN_BATCH]))))
    return found


def purgeable(session: Session, at: int, limit: int) -> list[FileRow]:
    """Files expired at ``at`` that no unfinished job names: a job downloads its files again on every
    (re)start, so a queued, running or paused job would fail if they went now; they go once it ends."""
    in_use = (
        select(JobRow.id)
        .where(
            JobRow.status.not_in(TERMINAL),
            or_(JobRow.training_file == FileRow.id, JobRow.validation_file == FileRow.id),
        )
        .exists()
    )
    query = select(FileRow).where(FileRow.expires_at <= at, ~in_use).order_by(FileRow.seq).limit(limit)
    return list(session.scalars(query))


def remove_all(session: Session, rows: Collection[FileRow]) -> None:
    session.execute(delete(FileRow).where(FileRow.seq.in_([row.seq for row in rows])))
