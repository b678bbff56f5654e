"""All SQL on ``job_evaluations``: a provider's re-runs of a finished job's evaluation. Claiming, heartbeats and
the sweeper's re-queues go through ``service/runs/repository.py``, shared with screens and alignments."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.orm import EvaluationRow

PENDING = ("queued", "running")  # a re-run not finished yet: at most one per job


def add(session: Session, row: EvaluationRow) -> EvaluationRow:
    session.add(row)
    session.flush()
    return row


def get(session: Session, evaluation_id: str) -> EvaluationRow | None:
    return session.get(EvaluationRow, evaluation_id)


def for_job(session: Session, job_id: str, limit: int = 50) -> list[EvaluationRow]:
    """A job's re-evaluations, newest first."""
    query = select(EvaluationRow).where(EvaluationRow.job_id == job_id)
    return list(session.scalars(query.order_by(EvaluationRow.created_at.desc(), EvaluationRow.id.desc()).limit(limit)))


def pending_for_job(session: Session, job_id: str) -> EvaluationRow | None:
    query = select(EvaluationRow).where(EvaluationRow.job_id == job_id, EvaluationRow.status.in_(PENDING))
    return session.scalar(query.limit(1))


def gpu_class_of(session: Session, evaluation_id: str) -> str | None:
    """The GPU class it was requested on (its job's base model's then)."""
    return session.scalar(select(EvaluationRow.gpu_class).where(EvaluationRow.id == evaluation_id))
