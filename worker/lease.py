"""Job ownership in the DB: claim with a conditional update, renew with heartbeats, re-queue expired leases.

Celery only wakes workers. Every write a worker makes is compare-and-set on its lease token, so a duplicate
delivery, a late Redis redelivery or a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import or_, select, update

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import now
from service.orm import JobRow
from service.queue import unsent_for
from worker.heartbeat import Heartbeat

log = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns the job now (our lease expired); stop without writing anything."""


@dataclass(frozen=True)
class Lease:
    job_id: str
    token: str
    attempt: int


def claim(settings: Settings, job_id: str, worker_id: str) -> Lease | None:
    """Take a queued job (or a running one whose lease expired); None if it is not ours to run."""
    token = uuid.uuid4().hex
    with session_scope(settings.database_url) as session:
        eligible = or_(
            JobRow.status == "queued", (JobRow.status == "running") & (JobRow.lease_expires_at < time.time())
        )
        # SKIP LOCKED: a second worker racing for the same row moves on instead of waiting (PostgreSQL only).
        row = session.execute(
            select(JobRow.attempts).where(JobRow.id == job_id, eligible).with_for_update(skip_locked=True)
        ).first()
        if row is None:
            return None
        attempt = row.attempts + 1
        if attempt > settings.max_attempts:
            if jobs.transition(
                session,
                job_id,
                ("queued", "running"),
                "failed",
                finished_at=now(),
                lease_token=None,
                error={
                    "code": "attempts_exhausted",
                    "param": None,
                    "message": f"The job stopped its worker {row.attempts} times; giving up.",
                },
            ):
                jobs.add_event(session, job_id, "Fine-tuning job failed: too many worker losses", level="error")
            return None
        moved = session.execute(
            update(JobRow)
            .where(JobRow.id == job_id, eligible)
            .values(
                status="running",
                lease_token=token,
                lease_expires_at=time.time() + settings.lease_seconds,
                attempts=attempt,
                worker_id=worker_id,
            )
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            return None
    return Lease(job_id, token, attempt)


def renew(settings: Settings, lease: Lease) -> str | None:
    """Extend the lease; returns the pending control request ("cancel"/"pause") or raises LeaseLost."""
    with session_scope(settings.database_url) as session:
        moved = session.execute(
            update(JobRow)
            .where(JobRow.id == lease.job_id, JobRow.lease_token == lease.token, JobRow.status == "running")
            .values(lease_expires_at=time.time() + settings.lease_seconds)
            .execution_options(synchronize_session=False)
        ).rowcount
        if moved != 1:
            raise LeaseLost(lease.job_id)
        return session.scalar(select(JobRow.control).where(JobRow.id == lease.job_id))


def heartbeat(settings: Settings, lease: Lease) -> Heartbeat:
    """Renews the lease from a background thread, so a long step can't let it lapse while we are alive."""

    def beat() -> bool:
        try:
            renew(settings, lease)
            return True
        except LeaseLost:
            return False

    return Heartbeat(settings.lease_seconds / 4, beat, f"lease-{lease.job_id}")


def sweep(settings: Settings, enqueue: Callable[[str], None]) -> list[str]:
    """Re-queue running jobs whose lease expired and re-send queued jobs no worker took; returns job ids sent."""
    sent = []
    with session_scope(settings.database_url) as session:
        expired = session.scalars(
            select(JobRow.id).where(JobRow.status == "running", JobRow.lease_expires_at < time.time())
        ).all()
        for job_id in expired:
            if jobs.transition(session, job_id, ("running",), "queued", lease_token=None, lease_expires_at=None):
                jobs.add_event(
                    session,
                    job_id,
                    "Worker lost (lease expired); job re-queued to resume from its last checkpoint",
                    level="warn",
                )
                sent.append(job_id)
        stale = session.scalars(
            select(JobRow.id).where(
                JobRow.status.in_(("queued", "validating_files")),
                unsent_for(JobRow, settings),
            )
        ).all()
        sent += [j for j in stale if j not in sent]
    for job_id in sent:
        enqueue(job_id)
    return sent
