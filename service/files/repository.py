"""All SQL for files and their pre-screens."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.fine_tuning.repository import TERMINAL
from service.ids import new_id, now
from service.orm import BaseModelRow, FileRow, FileScreenRow, JobRow
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


# --- file screens (service/files/screening.py, worker/screening/) --------------------------------------------


def get_screen(session: Session, file_id: str, base_model: str) -> FileScreenRow | None:
    return session.scalar(
        select(FileScreenRow).where(FileScreenRow.file_id == file_id, FileScreenRow.base_model == base_model)
    )


def latest_screen(session: Session, file_id: str) -> FileScreenRow | None:
    query = select(FileScreenRow).where(FileScreenRow.file_id == file_id)
    return session.scalar(query.order_by(FileScreenRow.created_at.desc(), FileScreenRow.id.desc()).limit(1))


def insert_screen(session: Session, file: FileRow, base_model: str) -> FileScreenRow:
    """Insert a queued screen; if a concurrent request won the unique (file, base) race, return theirs."""
    row = FileScreenRow(
        id=new_id("fscr_"),
        file_id=file.id,
        org_id=file.org_id,
        base_model=base_model,
        status="queued",
        created_at=now(),
    )
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        existing = get_screen(session, file.id, base_model)
        if existing is None:
            raise
        return existing
    return row


def requeue_screen(session: Session, screen_id: str, status: str) -> bool:
    """Back to queued, if it is still ``status`` (a concurrent POST may have done it already)."""
    values = {"status": "queued", "error": None, "result": None, "finished_at": None, "created_at": now()}
    done = session.execute(
        update(FileScreenRow).where(FileScreenRow.id == screen_id, FileScreenRow.status == status).values(**values)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def screen_inputs(session: Session, screen_id: str) -> tuple[str | None, BaseModelRow | None]:
    """Worker: (the file's object key, the base model row) of a screen; None where they are gone."""
    screen = session.get(FileScreenRow, screen_id)
    if screen is None:
        return None, None
    key = session.scalar(
        select(FileRow.object_key).where(FileRow.id == screen.file_id, FileRow.org_id == screen.org_id)
    )
    return key, session.get(BaseModelRow, screen.base_model)


def screen_gpu_class(session: Session, screen_id: str) -> str | None:
    """A screen goes to its base model's GPU class."""
    query = (
        select(BaseModelRow.gpu_class)
        .join(FileScreenRow, FileScreenRow.base_model == BaseModelRow.name)
        .where(FileScreenRow.id == screen_id)
    )
    return session.scalar(query)
