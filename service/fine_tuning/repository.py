"""All SQL for fine-tuning jobs, their events and checkpoints. Shared by the API and the worker runner."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Exists, exists, func, literal, or_, select, update
from sqlalchemy.orm import Session, aliased

from service.ids import new_id, now
from service.orm import BaseModelRow, CheckpointRow, JobEventRow, JobRow, OrgQuotaRow, OrgRow
from service.pagination import page

TERMINAL = ("succeeded", "failed", "cancelled")


def get(session: Session, job_id: str, org_id: str | None = None) -> JobRow | None:
    query = select(JobRow).where(JobRow.id == job_id)
    if org_id is not None:
        query = query.where(JobRow.org_id == org_id)
    return session.scalar(query)


def get_one(session: Session, job_id: str) -> JobRow:
    """The job, or ``NoResultFound`` (a worker holding an id whose row is gone)."""
    return session.scalars(select(JobRow).where(JobRow.id == job_id)).one()


def get_by_idempotency_key(session: Session, org_id: str, key: str) -> JobRow | None:
    return session.scalar(select(JobRow).where(JobRow.org_id == org_id, JobRow.idempotency_key == key))


def add(session: Session, row: JobRow) -> JobRow:
    session.add(row)
    session.flush()
    return row


def _metadata_is(key: str, value: str) -> Exists:
    """SQLite: metadata[key] == value, matching the key as data. SQLAlchemy's `col[key]` formats the key into a
    JSON path ('$."key"'), which a key holding '"' or a NUL breaks; PostgreSQL's `->>` binds it, so it needs no
    such detour."""
    each = func.json_each(JobRow.job_metadata).table_valued("key", "value", "type")
    return exists().where(each.c.key == key, each.c.type == "text", each.c.value == value)


def list_page(
    session: Session, org_id: str | None, *, after: str | None, limit: int, metadata: dict[str, str]
) -> tuple[list[JobRow], bool]:
    query = select(JobRow)
    if org_id is not None:
        query = query.where(JobRow.org_id == org_id)
    sqlite = session.get_bind().dialect.name == "sqlite"
    for key, value in metadata.items():
        query = query.where(_metadata_is(key, value) if sqlite else JobRow.job_metadata[key].as_string() == value)
    return page(session, query, JobRow.seq, JobRow.id, after=after, limit=limit)


def transition(
    session: Session,
    job_id: str,
    from_status: tuple[str, ...],
    to_status: str,
    *,
    lease_token: str | None = None,
    **values: Any,
) -> bool:
    """Compare-and-set: move the job only if it is still in one of `from_status` (and, for a worker, still
    holds `lease_token`). Returns whether it moved."""
    query = update(JobRow).where(JobRow.id == job_id, JobRow.status.in_(from_status))
    if lease_token is not None:
        query = query.where(JobRow.lease_token == lease_token)
    result = session.execute(query.values(status=to_status, **values).execution_options(synchronize_session=False))
    return result.rowcount == 1  # type: ignore[attr-defined]


def request_control(session: Session, job_id: str, control: str, when_status: tuple[str, ...]) -> bool:
    """Ask the worker holding the job to cancel or pause at its next step."""
    result = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.status.in_(when_status))
        .values(control=control)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1  # type: ignore[attr-defined]


def add_event(
    session: Session,
    job_id: str,
    message: str,
    *,
    level: str = "info",
    type: str = "message",
    data: dict[str, Any] | None = None,
) -> JobEventRow:
    row = JobEventRow(
        id=new_id("ftevent-"),
        job_id=job_id,
        created_at=now(),
        level=level,
        message=message,
        type=type,
        data=data,
    )
    session.add(row)
    return row


def events_page(session: Session, job_id: str, *, after: str | None, limit: int) -> tuple[list[JobEventRow], bool]:
    query = select(JobEventRow).where(JobEventRow.job_id == job_id)
    return page(session, query, JobEventRow.seq, JobEventRow.id, after=after, limit=limit)


def checkpoints_page(
    session: Session, job_id: str, *, after: str | None, limit: int
) -> tuple[list[CheckpointRow], bool]:
    query = select(CheckpointRow).where(CheckpointRow.job_id == job_id)
    return page(session, query, CheckpointRow.seq, CheckpointRow.id, after=after, limit=limit)


def poll_events(session: Session, job_id: str, after_seq: int) -> tuple[str | None, list[JobEventRow]]:
    """The job's status (None once deleted) and its events after `after_seq`, oldest first, for event streams.

    The status is read first: a cancel commits its transition and its last event together, so a terminal status
    seen here guarantees the events read next include that last event (read the other way round, a stream could
    end with [DONE] but without "Fine-tuning job cancelled")."""
    status = session.scalar(select(JobRow.status).where(JobRow.id == job_id))
    rows = session.scalars(
        select(JobEventRow).where(JobEventRow.job_id == job_id, JobEventRow.seq > after_seq).order_by(JobEventRow.seq)
    ).all()
    return status, list(rows)


# --- what the worker runs: the job lease, checkpoints, routing -------------------------------------------------
# Every write a worker makes is compare-and-set on its lease token, so a duplicate delivery, a late redelivery or a
# worker that lost its lease changes nothing.


def _claimable(expires_before: float) -> Any:
    return or_(JobRow.status == "queued", (JobRow.status == "running") & (JobRow.lease_expires_at < expires_before))


def claimable_attempts(session: Session, job_id: str, at: float) -> int | None:
    """The attempts so far of a queued job (or a running one whose lease expired by ``at``), row-locked; None if
    it is not claimable. SKIP LOCKED: a second worker racing for the row moves on instead of waiting (PostgreSQL)."""
    query = select(JobRow.attempts).where(JobRow.id == job_id, _claimable(at)).with_for_update(skip_locked=True)
    row = session.execute(query).first()
    return None if row is None else row.attempts


def take_lease(session: Session, job_id: str, at: float, **lease: Any) -> bool:
    """Mark a still-claimable job running with ``lease`` (token, expiry, attempts, worker id); whether it moved."""
    moved = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, _claimable(at))
        .values(status="running", **lease)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return moved == 1


def _org_running(at: float) -> Any:
    """Per candidate row: its org's jobs running under a live lease (an expired one is as good as queued)."""
    other = aliased(JobRow)
    where = (other.org_id == JobRow.org_id, other.status == "running", other.lease_expires_at >= at)
    return select(func.count()).select_from(other).where(*where).correlate(JobRow).scalar_subquery()


def _running_cap(default: int | None) -> Any:
    """The org's running-jobs limit: its override, else the provider default (NULL: none)."""
    return OrgQuotaRow.running_jobs if default is None else func.coalesce(OrgQuotaRow.running_jobs, literal(default))


def fair_candidates(session: Session, gpu_class: str, at: float, default_cap: int | None, limit: int) -> list[str]:
    """The claimable jobs (validating, queued, or running with an expired lease) of one GPU class, fairest first:
    orgs under their running limit only, the org with the fewest running jobs first, then the org whose last claim
    is oldest (never claimed first: round-robin when one worker leaves every count at 0), then the oldest job."""
    other = aliased(JobRow)
    last_claim = select(func.max(other.claimed_at)).where(other.org_id == JobRow.org_id).correlate(JobRow)
    running, cap = _org_running(at), _running_cap(default_cap)
    waiting = JobRow.status.in_(("validating_files", "queued"))
    query = (
        select(JobRow.id)
        .join(BaseModelRow, BaseModelRow.name == JobRow.model)
        .outerjoin(OrgQuotaRow, OrgQuotaRow.org_id == JobRow.org_id)
        .where(BaseModelRow.gpu_class == gpu_class, or_(waiting, _claimable(at)), or_(cap.is_(None), running < cap))
        .order_by(running, last_claim.scalar_subquery().asc().nulls_first(), JobRow.seq)
        .limit(limit)
    )
    return list(session.scalars(query))


def org_has_room(session: Session, job_id: str, at: float, default_cap: int | None) -> bool:
    """Whether the job's org may start one more job. Locks the org's row first (PostgreSQL), so claims of one org
    are counted one at a time and two workers can't both take its last free slot."""
    org_id = session.scalar(select(JobRow.org_id).where(JobRow.id == job_id))
    if org_id is None:
        return False
    session.execute(select(OrgRow.id).where(OrgRow.id == org_id).with_for_update())
    cap = session.scalar(select(_running_cap(default_cap)).select_from(OrgRow).outerjoin(
        OrgQuotaRow, OrgQuotaRow.org_id == OrgRow.id).where(OrgRow.id == org_id))  # fmt: skip
    if cap is None:
        return True
    other = aliased(JobRow)
    running = select(func.count()).select_from(other).where(
        other.org_id == org_id, other.status == "running", other.lease_expires_at >= at, other.id != job_id
    )
    return (session.scalar(running) or 0) < cap


def renew_lease(session: Session, job_id: str, token: str, expires_at: float) -> bool:
    """Extend a running job's lease if ``token`` still holds it."""
    moved = session.execute(
        update(JobRow)
        .where(JobRow.id == job_id, JobRow.lease_token == token, JobRow.status == "running")
        .values(lease_expires_at=expires_at)
        .execution_options(synchronize_session=False)
    ).rowcount  # type: ignore[attr-defined]
    return moved == 1


def holds_lease(session: Session, job_id: str, token: str) -> bool:
    query = select(JobRow.id).where(JobRow.id == job_id, JobRow.lease_token == token, JobRow.status == "running")
    return session.scalar(query) is not None


def control_of(session: Session, job_id: str) -> str | None:
    """The pending control request ("cancel"/"pause") of a job, if any."""
    return session.scalar(select(JobRow.control).where(JobRow.id == job_id))


def status_of(session: Session, job_id: str) -> str | None:
    return session.scalar(select(JobRow.status).where(JobRow.id == job_id))


def expired_leases(session: Session, at: float) -> list[str]:
    """Ids of running jobs whose lease expired before ``at``."""
    return list(session.scalars(select(JobRow.id).where(JobRow.status == "running", JobRow.lease_expires_at < at)))


def set_estimated_finish(session: Session, job_id: str, eta: int) -> None:
    session.execute(JobRow.__table__.update().where(JobRow.id == job_id).values(estimated_finish=eta))


def add_checkpoint(session: Session, row: CheckpointRow) -> CheckpointRow:
    session.add(row)
    return row


def checkpoints_newest_first(session: Session, job_id: str) -> list[tuple[str, int]]:
    """(object prefix, step) of every checkpoint of the job, newest first."""
    query = (
        select(CheckpointRow.object_prefix, CheckpointRow.step_number)
        .where(CheckpointRow.job_id == job_id)
        .order_by(CheckpointRow.step_number.desc())
    )
    return [(prefix, step) for prefix, step in session.execute(query).all()]


def gpu_class_of(session: Session, job_id: str) -> str | None:
    """A job goes to its base model's GPU class (None if the base is gone)."""
    query = select(BaseModelRow.gpu_class).join(JobRow, JobRow.model == BaseModelRow.name).where(JobRow.id == job_id)
    return session.scalar(query)
