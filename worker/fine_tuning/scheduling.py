"""Fair scheduling across orgs at claim time: a job message is a wake-up, not an order.

The worker that receives any job's message claims the fairest claimable job of that job's GPU class
(``fine_tuning.repository.fair_candidates``: orgs under their running limit, fewest running first, then
round-robin by last claim, then oldest job), so one org's hundred queued jobs can't starve another org's one.
No job is lost: every job keeps its own message, each delivery claims at most one job, and a delivery whose named
job was already taken claims another one instead; the lease (``worker/leases.py``) still makes each claim exclusive.
A job passed over for its org's running limit is woken by ``wake_next`` when some job of its class ends, and at the
latest by the sweeper's re-send after ``requeue_after_s``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

from service.broker import resend_job
from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.quotas import repository as quotas
from worker.leases import Lease, claim_job

log = logging.getLogger(__name__)

CANDIDATES = 8  # tried in order; more only matter when that many workers race for the same jobs


def candidates(settings: Settings, job_id: str) -> list[str]:
    with session_scope(settings.database_url) as session:
        gpu_class = jobs.gpu_class_of(session, job_id)
        if gpu_class is None:  # its base model is gone: only the job itself, which then fails naming that
            return [job_id]
        return jobs.fair_candidates(session, gpu_class, time.time(), settings.quota_running_jobs, CANDIDATES)


def claim_fair(settings: Settings, job_id: str, worker_id: str, validate: Callable[[str], None]) -> Lease | None:
    """Claim the fairest claimable job of ``job_id``'s GPU class (validating its files first if needed)."""
    for candidate in candidates(settings, job_id):
        with session_scope(settings.database_url) as session:
            status = jobs.status_of(session, candidate)
        if status == "validating_files":
            validate(candidate)  # validating_files → queued (or failed, then the claim below does nothing)
        lease = claim_job(settings, candidate, worker_id)
        if lease is not None:
            if candidate != job_id:
                log.info("message for %s: claimed %s, the fairest job of its GPU class", job_id, candidate)
            return lease
    return None


def _limits_apply(settings: Settings) -> bool:
    if settings.quota_running_jobs is not None:
        return True
    with session_scope(settings.database_url) as session:
        return quotas.any_running_override(session)


def wake_next(settings: Settings, job_id: str) -> None:
    """After a run ends, publish a wake-up for the fairest waiting job of the class: one skipped at its org's
    running limit had its message consumed while it could not start. Without running limits no message is spent
    without a claim, so there is nothing to make up for."""
    try:
        waiting = candidates(settings, job_id) if _limits_apply(settings) else []
        if waiting:
            resend_job(settings, waiting[0])
    except Exception:  # a wake-up is an optimisation; the sweeper re-sends what no worker took
        log.warning("could not publish a wake-up after %s", job_id, exc_info=True)
