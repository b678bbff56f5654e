"""All SQL that serving needs: which fine-tuned model, checkpoint or job a `model` name points to."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.orm import CheckpointRow, FineTunedModelRow, JobRow


def tuned_model(session: Session, org_id: str, model_id: str) -> FineTunedModelRow | None:
    """The org's fine-tuned model of that id, deleted or not."""
    return session.scalar(
        select(FineTunedModelRow).where(FineTunedModelRow.org_id == org_id, FineTunedModelRow.id == model_id)
    )


def checkpoint(session: Session, org_id: str, name: str) -> tuple[CheckpointRow, JobRow] | None:
    """The org's checkpoint whose ``fine_tuned_model_checkpoint`` is ``name``, with its job."""
    row = session.execute(
        select(CheckpointRow, JobRow)
        .join(JobRow, JobRow.id == CheckpointRow.job_id)
        .where(JobRow.org_id == org_id, CheckpointRow.fine_tuned_model_checkpoint == name)
    ).first()
    return None if row is None else (row[0], row[1])


def job(session: Session, org_id: str, job_id: str) -> JobRow | None:
    return session.scalar(select(JobRow).where(JobRow.org_id == org_id, JobRow.id == job_id))
