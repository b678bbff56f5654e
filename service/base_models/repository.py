"""All SQL for the provider's base-model registry and its alignment runs."""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from service.orm import AlignmentRow, BaseModelRow


def get(session: Session, name: str) -> BaseModelRow | None:
    return session.get(BaseModelRow, name)


def list_all(session: Session, *, aligned_only: bool = False, offered_only: bool = False) -> list[BaseModelRow]:
    """Every registered base; ``offered_only`` leaves out the retired ones."""
    query = select(BaseModelRow).order_by(BaseModelRow.created_at, BaseModelRow.name)
    if aligned_only:
        query = query.where(BaseModelRow.aligned.is_(True))
    if offered_only:
        query = query.where(BaseModelRow.retired_at.is_(None))
    return list(session.scalars(query))


def set_retired(session: Session, name: str, retired_at: int | None) -> BaseModelRow | None:
    """Retire ``name`` at ``retired_at``, or reinstate it (None). Retiring is compare-and-set on a null
    ``retired_at``, so a second (or concurrent) retire keeps the first time."""
    query = update(BaseModelRow).where(BaseModelRow.name == name)
    if retired_at is not None:
        query = query.where(BaseModelRow.retired_at.is_(None))
    session.execute(query.values(retired_at=retired_at).execution_options(synchronize_session=False))
    row = session.get(BaseModelRow, name)
    if row is not None:
        session.refresh(row)
    return row


def upsert(session: Session, row: BaseModelRow) -> BaseModelRow:
    merged = session.merge(row)
    session.flush()
    return merged


# --- provider alignment runs (service/base_models/alignments.py, worker/alignment/) --------------------------


def alignment_in_progress(session: Session, name: str, pending: tuple[str, ...]) -> str | None:
    """The id of an alignment of ``name`` that is still in one of ``pending``, if any."""
    return session.scalar(select(AlignmentRow.id).where(AlignmentRow.name == name, AlignmentRow.status.in_(pending)))


def add_alignment(session: Session, row: AlignmentRow) -> AlignmentRow:
    session.add(row)
    session.flush()
    return row


def get_alignment(session: Session, alignment_id: str) -> AlignmentRow | None:
    return session.get(AlignmentRow, alignment_id)


def recent_alignments(session: Session, limit: int) -> list[AlignmentRow]:
    query = select(AlignmentRow).order_by(AlignmentRow.created_at.desc(), AlignmentRow.id.desc()).limit(limit)
    return list(session.scalars(query))


def alignment_gpu_class(session: Session, alignment_id: str) -> str | None:
    """The GPU class an alignment was started for."""
    return session.scalar(select(AlignmentRow.gpu_class).where(AlignmentRow.id == alignment_id))
