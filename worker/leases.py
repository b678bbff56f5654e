"""Who runs what: one lease/heartbeat mechanism for every kind of run (the SQL is in the repositories).

Celery only wakes workers; the DB owns every run, and every write a worker makes is fenced:

* A fine-tuning job writes all the time, so it is fenced by a lease token: ``claim_job`` takes it with a
  conditional update, a heartbeat thread renews it (``job_heartbeat``), and ``sweep_jobs`` re-queues a job whose
  lease expired (its worker died) so another worker resumes it from its last checkpoint.
* A file screen or a provider alignment writes progress and one final result, so its attempt number is the fence:
  ``claim_run`` bumps ``attempts``, ``run_heartbeat`` keeps ``heartbeat_at`` fresh, ``write_run``/``finish_run``
  write only while the row still carries our attempt, and ``sweep_runs`` puts a run whose worker stopped beating
  back to ``queued`` (or fails it once ``max_attempts`` workers were lost).

Both sweeps also re-send a queued row that no worker took within ``requeue_after_s`` (``enqueued_at``, stamped at
each publish). So a duplicate delivery, a late Redis redelivery or a worker that lost its lease changes nothing.
"""

from __future__ import annotations

import contextvars
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import now
from service.orm import JobRow
from service.runs import repository as runs
from service.runs.repository import Run

log = logging.getLogger(__name__)


class Heartbeat:
    """Calls ``beat()`` every ``interval`` seconds while the ``with`` block runs. ``beat`` returns False to stop
    (the work is no longer ours); an exception (a DB blip) is logged and the next beat tries again."""

    def __init__(self, interval: float, beat: Callable[[], bool], name: str) -> None:
        self.interval, self.beat, self.name = interval, beat, name
        self._stop = threading.Event()
        # A thread starts with an empty context: run it in a copy of ours so its lines name the job and attempt
        # (service/logs.py binds them in a mutable dict, so ids bound after this still show).
        self._thread = threading.Thread(
            target=contextvars.copy_context().run, args=(self._run,), name=name, daemon=True
        )

    def __enter__(self) -> Heartbeat:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                if not self.beat():
                    return
            except Exception:
                log.exception("%s: beat failed", self.name)


# --- fine-tuning jobs: fenced by a lease token -----------------------------------------------------------------


class LeaseLost(Exception):
    """Another worker owns the job now (our lease expired); stop without writing anything."""


@dataclass(frozen=True)
class Lease:
    job_id: str
    token: str
    attempt: int


def claim_job(settings: Settings, job_id: str, worker_id: str) -> Lease | None:
    """Take a queued job (or a running one whose lease expired); None if it is not ours to run."""
    token = uuid.uuid4().hex
    with session_scope(settings.database_url) as session:
        at = time.time()
        attempts = jobs.claimable_attempts(session, job_id, at)
        if attempts is None:
            return None
        attempt = attempts + 1
        if attempt > settings.max_attempts:
            error = {
                "code": "attempts_exhausted",
                "param": None,
                "message": f"The job stopped its worker {attempts} times; giving up.",
            }
            if jobs.transition(
                session, job_id, ("queued", "running"), "failed", finished_at=now(), lease_token=None, error=error
            ):
                jobs.add_event(session, job_id, "Fine-tuning job failed: too many worker losses", level="error")
            return None
        if not jobs.org_has_room(session, job_id, at, settings.quota_running_jobs):
            return None  # the org is at its running-jobs limit: the job stays queued
        lease = {"lease_token": token, "lease_expires_at": time.time() + settings.lease_seconds, "claimed_at": at}
        if not jobs.take_lease(session, job_id, at, attempts=attempt, worker_id=worker_id, **lease):
            return None
    return Lease(job_id, token, attempt)


def renew_job(settings: Settings, lease: Lease) -> str | None:
    """Extend the lease; returns the pending control request ("cancel"/"pause") or raises LeaseLost."""
    with session_scope(settings.database_url) as session:
        if not jobs.renew_lease(session, lease.job_id, lease.token, time.time() + settings.lease_seconds):
            raise LeaseLost(lease.job_id)
        return jobs.control_of(session, lease.job_id)


def job_heartbeat(settings: Settings, lease: Lease) -> Heartbeat:
    """Renews the lease from a background thread, so a long step can't let it lapse while we are alive."""

    def beat() -> bool:
        try:
            renew_job(settings, lease)
            return True
        except LeaseLost:
            return False

    return Heartbeat(settings.lease_seconds / 4, beat, f"lease-{lease.job_id}")


def sweep_jobs(settings: Settings, enqueue: Callable[[str], None]) -> list[str]:
    """Re-queue running jobs whose lease expired and re-send queued jobs no worker took; returns job ids sent."""
    sent = []
    with session_scope(settings.database_url) as session:
        for job_id in jobs.expired_leases(session, time.time()):
            if jobs.transition(session, job_id, ("running",), "queued", lease_token=None, lease_expires_at=None):
                jobs.add_event(
                    session,
                    job_id,
                    "Worker lost (lease expired); job re-queued to resume from its last checkpoint",
                    level="warn",
                )
                sent.append(job_id)
        stale = runs.unsent_queued(session, JobRow, ("queued", "validating_files"), settings.requeue_after_s)
        sent += [j for j in stale if j not in sent]
    for job_id in sent:
        enqueue(job_id)
    return sent


# --- file screens and provider alignments: fenced by the attempt number ----------------------------------------


def claim_run(settings: Settings, table: Run, run_id: str, worker_id: str) -> int | None:
    """queued (or running with a stale heartbeat) → running; returns our attempt number, None if not ours."""
    with session_scope(settings.database_url) as session:
        return runs.claim(session, table, run_id, worker_id, settings.lease_seconds)


def write_run(settings: Settings, table: Run, run_id: str, attempt: int, **values: Any) -> bool:
    """Update a running run we still own (progress, heartbeat); False if another attempt has it now."""
    with session_scope(settings.database_url) as session:
        return runs.write(session, table, run_id, attempt, **values)


def finish_run(
    settings: Settings, table: Run, run_id: str, attempt: int, *, result: Any = None, error: str | None = None
) -> bool:
    """running → succeeded (with ``result``) or failed (with ``error``), if the run is still ours."""
    status = "failed" if error is not None else "succeeded"
    return write_run(settings, table, run_id, attempt, status=status, result=result, error=error, finished_at=now())


def run_heartbeat(settings: Settings, table: Run, run_id: str, attempt: int) -> Heartbeat:
    """Keeps ``heartbeat_at`` fresh from a background thread while the run works (and while it is ours)."""
    beat = lambda: write_run(settings, table, run_id, attempt, heartbeat_at=time.time())  # noqa: E731
    return Heartbeat(settings.lease_seconds / 4, beat, f"heartbeat-{run_id}")


def sweep_runs(settings: Settings, table: Run, resend: Callable[[str], None]) -> list[str]:
    """Re-queue runs whose worker stopped beating (or fail them after ``max_attempts``), and re-send queued runs
    no worker took within ``requeue_after_s`` (e.g. the broker was down when they were published); returns the
    re-sent ids."""
    sent = []
    with session_scope(settings.database_url) as session:
        for run_id, attempts in runs.stale_runs(session, table, settings.lease_seconds):
            gave_up = attempts >= settings.max_attempts
            values: dict[str, Any] = {"status": "failed" if gave_up else "queued", "heartbeat_at": None}
            if gave_up:
                values.update(error=f"the worker was lost {attempts} times; giving up", finished_at=now())
            moved = runs.release_stale(session, table, run_id, attempts, settings.lease_seconds, **values)
            if moved and not gave_up:
                log.warning("%s %s: worker lost (no heartbeat); re-queued", table.__tablename__, run_id)
                sent.append(run_id)
        waiting = runs.unsent_queued(session, table, ("queued",), settings.requeue_after_s)
        sent += [run_id for run_id in waiting if run_id not in sent]
    for run_id in sent:
        resend(run_id)
    return sent
