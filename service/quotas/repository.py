"""All SQL for per-org quotas: overrides, the database's fixed-window counters, and the job counts limits apply to."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, or_, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from service.orm import JobRow, OrgQuotaRow, OrgRow, QuotaUsageRow

QUEUED = ("validating_files", "queued")


def find_org(session: Session, id_or_name: str) -> OrgRow | None:
    """An org by id (`org-…`) or by name, so the CLI and the admin API take what the provider knows."""
    return session.scalar(select(OrgRow).where(or_(OrgRow.id == id_or_name, OrgRow.name == id_or_name)).limit(1))


_NO_OVERRIDE = "quotas.no_override"  # session.info: orgs seen without a row in this transaction


def get_override(session: Session, org_id: str) -> OrgQuotaRow | None:
    """A found row stays in the identity map, but a missing one would be queried again: most orgs have none, and
    a job create asks twice (the request rate, then the queued-jobs limit), so absence is remembered too."""
    missing = session.info.setdefault(_NO_OVERRIDE, set())
    if org_id in missing:
        return None
    row = session.get(OrgQuotaRow, org_id)
    if row is None:
        missing.add(org_id)
    return row


def put_override(session: Session, org_id: str, at: int, **limits: Any) -> OrgQuotaRow:
    session.info.get(_NO_OVERRIDE, set()).discard(org_id)
    row = session.get(OrgQuotaRow, org_id)
    if row is None:
        row = OrgQuotaRow(org_id=org_id, updated_at=at)
        session.add(row)
    for name, value in limits.items():
        setattr(row, name, value)
    row.updated_at = at
    session.flush()
    return row


def any_running_override(session: Session) -> bool:
    query = select(OrgQuotaRow.org_id).where(OrgQuotaRow.running_jobs.is_not(None)).limit(1)
    return session.scalar(query) is not None


def delete_override(session: Session, org_id: str) -> None:
    session.execute(delete(OrgQuotaRow).where(OrgQuotaRow.org_id == org_id))


def queued_jobs(session: Session, org_id: str) -> int:
    query = select(func.count()).select_from(JobRow).where(JobRow.org_id == org_id, JobRow.status.in_(QUEUED))
    return session.scalar(query) or 0


def running_jobs(session: Session, org_id: str, at: float) -> int:
    """Running jobs whose lease is live: an expired one is as good as queued (the sweeper re-queues it)."""
    query = select(func.count()).select_from(JobRow).where(
        JobRow.org_id == org_id, JobRow.status == "running", JobRow.lease_expires_at >= at
    )
    return session.scalar(query) or 0


def add_usage(session: Session, org_id: str, counter: str, window_start: int, amount: int) -> int:
    """Add ``amount`` to the window's counter in one upsert and return the new value; the first add of a window
    deletes the org's older windows of that counter, so the table holds about one row per org and counter."""
    insert = sqlite_insert if session.get_bind().dialect.name == "sqlite" else pg_insert
    values = {"org_id": org_id, "counter": counter, "window_start": window_start, "value": amount}
    statement = insert(QuotaUsageRow).values(**values)
    statement = statement.on_conflict_do_update(
        index_elements=["org_id", "counter", "window_start"],
        set_={"value": QuotaUsageRow.value + statement.excluded.value},
    ).returning(QuotaUsageRow.value)
    value = int(session.scalar(statement) or 0)
    if value == amount:
        session.execute(
            delete(QuotaUsageRow).where(
                QuotaUsageRow.org_id == org_id,
                QuotaUsageRow.counter == counter,
                QuotaUsageRow.window_start < window_start,
            )
        )
    return value


def usage(session: Session, org_id: str, counter: str, window_start: int) -> int:
    query = select(QuotaUsageRow.value).where(
        QuotaUsageRow.org_id == org_id, QuotaUsageRow.counter == counter, QuotaUsageRow.window_start == window_start
    )
    return int(session.scalar(query) or 0)
