"""All SQL of checkpoint permissions: the owner's grants, and which checkpoints another org has been granted."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.orm import CheckpointPermissionRow, CheckpointRow, JobRow, OrgRow
from service.pagination import page


def owned_checkpoint(session: Session, org_id: str, name: str) -> CheckpointRow | None:
    """The org's own checkpoint whose ``fine_tuned_model_checkpoint`` is ``name``."""
    return session.scalar(
        select(CheckpointRow)
        .join(JobRow, JobRow.id == CheckpointRow.job_id)
        .where(JobRow.org_id == org_id, CheckpointRow.fine_tuned_model_checkpoint == name)
    )


def existing_orgs(session: Session, org_ids: list[str]) -> set[str]:
    return set(session.scalars(select(OrgRow.id).where(OrgRow.id.in_(org_ids))))


def grant(session: Session, row: CheckpointPermissionRow) -> CheckpointPermissionRow:
    """Add ``row``, or return the grant of the same checkpoint and project that already exists (a retried or
    concurrent create must not fail on the unique index)."""
    found = find(session, row.checkpoint_id, project_id=row.project_id)
    if found is not None:
        return found
    try:
        with session.begin_nested():
            session.add(row)
    except IntegrityError:
        found = find(session, row.checkpoint_id, project_id=row.project_id)
        if found is None:
            raise
        return found
    return row


def find(
    session: Session, checkpoint_id: str, *, project_id: str | None = None, permission_id: str | None = None
) -> CheckpointPermissionRow | None:
    query = select(CheckpointPermissionRow).where(CheckpointPermissionRow.checkpoint_id == checkpoint_id)
    if project_id is not None:
        query = query.where(CheckpointPermissionRow.project_id == project_id)
    if permission_id is not None:
        query = query.where(CheckpointPermissionRow.id == permission_id)
    return session.scalar(query)


def permissions_page(
    session: Session, checkpoint_id: str, *, project_id: str | None, after: str | None, limit: int, newest_first: bool
) -> tuple[list[CheckpointPermissionRow], bool]:
    query = select(CheckpointPermissionRow).where(CheckpointPermissionRow.checkpoint_id == checkpoint_id)
    if project_id is not None:
        query = query.where(CheckpointPermissionRow.project_id == project_id)
    return page(
        session, query, CheckpointPermissionRow.seq, CheckpointPermissionRow.id,
        after=after, limit=limit, newest_first=newest_first,
    )


def revoke(session: Session, row: CheckpointPermissionRow) -> None:
    session.delete(row)
    session.flush()


def shared_checkpoint(session: Session, org_id: str, name: str) -> tuple[CheckpointRow, JobRow] | None:
    """Another org's checkpoint named ``name`` that ``org_id`` has been granted, with its job."""
    row = session.execute(
        select(CheckpointRow, JobRow)
        .join(JobRow, JobRow.id == CheckpointRow.job_id)
        .join(CheckpointPermissionRow, CheckpointPermissionRow.checkpoint_id == CheckpointRow.id)
        .where(CheckpointRow.fine_tuned_model_checkpoint == name, CheckpointPermissionRow.project_id == org_id)
    ).first()
    return None if row is None else (row[0], row[1])
