"""All SQL for the ops dashboard: the snapshot (read-only, across every org) and the browser sessions."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from service.orm import (
    AlignmentRow,
    ApiKeyRow,
    BaseModelRow,
    CheckpointRow,
    DashboardSessionRow,
    EvaluationRow,
    FileScreenRow,
    JobEventRow,
    JobRow,
    OrgRow,
    WorkerRow,
)


def count_by_status(
    session: Session, table: type[JobRow] | type[FileScreenRow] | type[AlignmentRow] | type[EvaluationRow]
) -> dict[str, int]:
    rows = session.execute(select(table.status, func.count()).group_by(table.status)).all()
    return {status: n for status, n in rows}


def recent_jobs(
    session: Session, limit: int, *, org: str | None = None, status: str | None = None, model: str | None = None
) -> list[tuple[JobRow, str]]:
    """The newest jobs of every org (or of the org, status and base model asked for), with the org's name."""
    query = select(JobRow, OrgRow.name).join(OrgRow, OrgRow.id == JobRow.org_id).order_by(JobRow.seq.desc())
    if org:
        query = query.where(OrgRow.name == org)
    if status:
        query = query.where(JobRow.status == status)
    if model:
        query = query.where(JobRow.model == model)
    return [(job, org) for job, org in session.execute(query.limit(limit)).all()]


def job_times(session: Session, since: int, limit: int) -> list[tuple[int, int | None, str]]:
    """(created_at, finished_at, status) of the newest jobs created or finished since ``since``."""
    query = (
        select(JobRow.created_at, JobRow.finished_at, JobRow.status)
        .where((JobRow.created_at >= since) | (JobRow.finished_at >= since))
        .order_by(JobRow.seq.desc())
        .limit(limit)
    )
    return [(c, f, s) for c, f, s in session.execute(query).all()]


def org_names(session: Session) -> list[str]:
    """Every org that has a job: the dashboard's org filter offers these."""
    query = select(OrgRow.name).join(JobRow, JobRow.org_id == OrgRow.id).distinct().order_by(OrgRow.name)
    return list(session.scalars(query))


def job_with_org(session: Session, job_id: str) -> tuple[JobRow, str] | None:
    """Any org's job, with its org's name (the provider sees every org)."""
    found = session.execute(select(JobRow, OrgRow.name).join(OrgRow, OrgRow.id == JobRow.org_id).where(
        JobRow.id == job_id)).first()  # fmt: skip
    return None if found is None else (found[0], found[1])


def job_events(session: Session, job_id: str, limit: int) -> list[JobEventRow]:
    """The job's first ``limit`` events, oldest first (metrics events included: the loss curves come from them)."""
    query = select(JobEventRow).where(JobEventRow.job_id == job_id).order_by(JobEventRow.seq).limit(limit)
    return list(session.scalars(query))


def job_checkpoints(session: Session, job_id: str) -> list[CheckpointRow]:
    query = select(CheckpointRow).where(CheckpointRow.job_id == job_id).order_by(CheckpointRow.step_number)
    return list(session.scalars(query))


def workers(session: Session, limit: int) -> list[WorkerRow]:
    return list(session.scalars(select(WorkerRow).order_by(WorkerRow.last_seen_at.desc()).limit(limit)))


def running_jobs(session: Session) -> list[Any]:
    """(id, model, status, worker_id) of every running job; few at a time, one per busy worker."""
    query = select(JobRow.id, JobRow.model, JobRow.status, JobRow.worker_id).where(JobRow.status == "running")
    return list(session.execute(query).all())


def recent_alignments(session: Session, limit: int) -> list[AlignmentRow]:
    query = select(AlignmentRow).order_by(AlignmentRow.created_at.desc(), AlignmentRow.id.desc())
    return list(session.scalars(query.limit(limit)))


def base_models(session: Session) -> list[BaseModelRow]:
    return list(session.scalars(select(BaseModelRow).order_by(BaseModelRow.created_at, BaseModelRow.name)))


def add_session(session: Session, token_hash: str, key_hash: str, created_at: int, expires_at: int) -> None:
    session.add(
        DashboardSessionRow(token_hash=token_hash, key_hash=key_hash, created_at=created_at, expires_at=expires_at)
    )


def session_admin(session: Session, token_hash: str, at: int) -> OrgRow | None:
    """The org of a live session: not revoked, not expired, and its key still unrevoked and admin."""
    query = (
        select(OrgRow)
        .join(ApiKeyRow, ApiKeyRow.org_id == OrgRow.id)
        .join(DashboardSessionRow, DashboardSessionRow.key_hash == ApiKeyRow.key_hash)
        .where(
            DashboardSessionRow.token_hash == token_hash,
            DashboardSessionRow.revoked_at.is_(None),
            DashboardSessionRow.expires_at > at,
            ApiKeyRow.revoked_at.is_(None),
            ApiKeyRow.is_admin.is_(True),
        )
    )
    return session.scalar(query)


def revoke_session(session: Session, token_hash: str, at: int) -> None:
    session.execute(
        update(DashboardSessionRow)
        .where(DashboardSessionRow.token_hash == token_hash, DashboardSessionRow.revoked_at.is_(None))
        .values(revoked_at=at)
    )


def delete_expired_sessions(session: Session, at: int) -> None:
    session.execute(delete(DashboardSessionRow).where(DashboardSessionRow.expires_at <= at))


def upsert_worker(session: Session, worker_id: str, **fields: Any) -> WorkerRow:
    """Insert or refresh a worker's registry row (``worker/registry.py``: only the worker itself writes its row,
    so read-then-write is safe)."""
    row = session.get(WorkerRow, worker_id)
    if row is None:
        row = WorkerRow(id=worker_id)
        session.add(row)
    for field, value in fields.items():
        setattr(row, field, value)
    return row
