"""All SQL for fine-tuned models (the caller's half of the Models API)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.orm import FineTunedModelRow


def fine_tuned(session: Session, org_id: str, model_id: str | None = None) -> list[FineTunedModelRow]:
    """The org's undeleted fine-tuned models (only ``model_id`` if given), oldest first."""
    query = select(FineTunedModelRow).where(
        FineTunedModelRow.org_id == org_id, FineTunedModelRow.deleted_at.is_(None)
    )
    if model_id is not None:
        query = query.where(FineTunedModelRow.id == model_id)
    return list(session.scalars(query.order_by(FineTunedModelRow.created_at)))


def add(session: Session, row: FineTunedModelRow) -> FineTunedModelRow:
    session.add(row)
    return row
