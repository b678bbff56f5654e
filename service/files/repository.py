"""All SQL for files."""

from __future__ import annotations

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from service.ids import now
from service.orm import FileRow
from service.pagination import page


def _live(org_id: str):  # type: ignore[no-untyped-def]
    return select(FileRow).where(
        FileRow.org_id == org_id, or_(FileRow.expires_at.is_(None), FileRow.expires_at > now())
    )


def get(session: Session, org_id: str, file_id: str) -> FileRow | None:
    return session.scalar(_live(org_id).where(FileRow.id == file_id))


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
