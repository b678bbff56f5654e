"""All SQL of the Uploads API and its janitor pass."""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from service.orm import UploadPartRow, UploadRow

_IN_BATCH = 500  # bound parameters per IN (...) list, well under SQLite's limit


def get(session: Session, org_id: str, upload_id: str) -> UploadRow | None:
    return session.scalar(select(UploadRow).where(UploadRow.org_id == org_id, UploadRow.id == upload_id))


def add(session: Session, row: UploadRow | UploadPartRow) -> None:
    session.add(row)
    session.flush()


def parts_total(session: Session, upload_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(UploadPartRow.bytes), 0)).where(UploadPartRow.upload_id == upload_id)
    )
    return int(total or 0)


def parts_of(session: Session, upload_id: str, part_ids: Collection[str]) -> dict[str, UploadPartRow]:
    ids = list(part_ids)
    found: dict[str, UploadPartRow] = {}
    for start in range(0, len(ids), _IN_BATCH):
        query = select(UploadPartRow).where(
            UploadPartRow.upload_id == upload_id, UploadPartRow.id.in_(ids[start : start + _IN_BATCH])
        )
        found.update((row.id, row) for row in session.scalars(query))
    return found


def finish(session: Session, upload_id: str, status: str, **values: object) -> bool:
    """pending → ``status`` (compare-and-set: a concurrent complete, cancel or janitor pass wins at most once),
    and the parts' rows go with it; their bytes are the caller's to delete after the commit."""
    done = session.execute(
        update(UploadRow)
        .where(UploadRow.id == upload_id, UploadRow.status == "pending")
        .values(status=status, **values)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    session.execute(delete(UploadPartRow).where(UploadPartRow.upload_id == upload_id))
    return True


def expire_due(session: Session, at: int) -> int:
    """Pending uploads past their hour at ``at`` → expired."""
    done = session.execute(
        update(UploadRow).where(UploadRow.status == "pending", UploadRow.expires_at <= at).values(status="expired")
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def dead_parts(session: Session, limit: int) -> list[UploadPartRow]:
    """Parts whose upload has ended: a part that finished storing just as its upload was cancelled, expired or
    completed still got its row."""
    query = (
        select(UploadPartRow)
        .join(UploadRow, UploadRow.id == UploadPartRow.upload_id)
        .where(UploadRow.status != "pending")
        .order_by(UploadPartRow.seq)
        .limit(limit)
    )
    return list(session.scalars(query))


def remove_parts(session: Session, rows: Collection[UploadPartRow]) -> None:
    session.execute(delete(UploadPartRow).where(UploadPartRow.seq.in_([row.seq for row in rows])))


def live_part_ids(session: Session, part_ids: Collection[str]) -> set[str]:
    """The ids among ``part_ids`` that have a row (whatever their upload's state)."""
    ids = list(part_ids)
    found: set[str] = set()
    for start in range(0, len(ids), _IN_BATCH):
        found.update(
            session.scalars(select(UploadPartRow.id).where(UploadPartRow.id.in_(ids[start : start + _IN_BATCH])))
        )
    return found
