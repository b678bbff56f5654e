"""The SQL behind the API's DB-derived metrics (service/metrics/collector.py): bounded reads across every org."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from service.orm import JobEventRow, JobRow, OrgRow

# What worker/fine_tuning/runner.py writes when an attempt starts training: the first one of a job is its start.
STARTED_MESSAGE = "Fine-tuning job started"
RESUMED_PREFIX = "Resuming from checkpoint"


def jobs_by_status_and_org(session: Session) -> list[tuple[str, str, int]]:
    """(status, org name, count): one row per org and status, not per job."""
    query = (
        select(JobRow.status, OrgRow.name, func.count())
        .join(OrgRow, OrgRow.id == JobRow.org_id)
        .group_by(JobRow.status, OrgRow.name)
    )
    return [(status, org, n) for status, org, n in session.execute(query).all()]


def recent_job_timings(session: Session, limit: int) -> list[Any]:
    """(status, created_at, started_at, finished_at, trained_tokens, evaluation) of the newest ``limit`` jobs;
    started_at is the first training start (an event; None if the job never started)."""
    started = (
        select(func.min(JobEventRow.created_at))
        .where(
            JobEventRow.job_id == JobRow.id,
            or_(JobEventRow.message == STARTED_MESSAGE, JobEventRow.message.startswith(RESUMED_PREFIX)),
        )
        .scalar_subquery()
    )
    query = select(
        JobRow.status,
        JobRow.created_at,
        started.label("started_at"),
        JobRow.finished_at,
        JobRow.trained_tokens,
        JobRow.evaluation,
    )
    return list(session.execute(query.order_by(JobRow.seq.desc()).limit(limit)).all())


def failures_by_code_and_model(session: Session, code: str) -> list[tuple[str, int]]:
    """(base model, count) of failed jobs whose error code is ``code``."""
    query = (
        select(JobRow.model, func.count())
        .where(JobRow.status == "failed", JobRow.error["code"].as_string() == code)
        .group_by(JobRow.model)
    )
    return [(model, n) for model, n in session.execute(query).all()]
