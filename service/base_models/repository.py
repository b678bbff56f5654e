"""All SQL for the provider's base-model registry."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.orm import BaseModelRow


def get(session: Session, name: str) -> BaseModelRow | None:
    return session.get(BaseModelRow, name)


def list_all(session: Session, *, aligned_only: bool = False) -> list[BaseModelRow]:
    query = select(BaseModelRow).order_by(BaseModelRow.created_at, BaseModelRow.name)
    if aligned_only:
        query = query.where(BaseModelRow.aligned.is_(True))
    return list(session.scalars(query))


def upsert(session: Session, row: BaseModelRow) -> BaseModelRow:
    merged = session.merge(row)
    session.flush()
    return merged
