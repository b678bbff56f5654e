"""Job outcome webhooks, signed per Standard Webhooks so `openai`'s `client.webhooks.unwrap()` verifies them.

Spec: https://github.com/standard-webhooks/standard-webhooks/blob/main/spec/standard-webhooks.md
One event is one message: its `webhook-id` stays the same on every retry and for every endpoint, so receivers
can de-duplicate; the timestamp and signature are fresh per attempt because receivers reject timestamps older
than 5 minutes (the SDK's tolerance). Both processes deliver: the API the outcomes it decides itself (a job
cancelled before any worker ran it), workers the rest and every retry (the task is ``worker/webhooks/tasks.py``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

import httpx
from sqlalchemy.orm import Session

from service.broker import DELIVER_WEBHOOK, WEBHOOKS_QUEUE, app_for
from service.config import Settings
from service.db import after_commit, session_scope
from service.fine_tuning import repository as jobs
from service.ids import now
from service.orm import JobRow
from service.webhooks import repository as endpoints
from service.webhooks.signing import sign

log = logging.getLogger(__name__)

TASK_NAME = DELIVER_WEBHOOK
QUEUE = WEBHOOKS_QUEUE
EVENT_TYPES = {s: f"fine_tuning.job.{s}" for s in ("succeeded", "failed", "cancelled")}
# One inline try, then retries after base, 2·base, 4·base, 8·base, 16·base seconds.
MAX_ATTEMPTS = 6
BASE_DELAY_S = 1.0
TIMEOUT_S = 10.0


def event_type(status: str) -> str:
    if status in EVENT_TYPES.values():
        return status
    if status not in EVENT_TYPES:
        raise ValueError(f"no webhook event for job status {status!r}")
    return EVENT_TYPES[status]


def event_id(job_id: str, status: str) -> str:
    # Derived, not random: a job reaches an outcome once, so a repeated notification is the same event.
    return "evt_" + hashlib.sha256(f"{job_id}:{event_type(status)}".encode()).hexdigest()[:32]


def job_event(job: Mapping[str, Any] | JobRow, status: str) -> bytes:
    """The payload of openai's `FineTuningJob{Succeeded,Failed,Cancelled}WebhookEvent`, compact JSON."""
    if isinstance(job, Mapping):
        job_id, finished_at = job["id"], job.get("finished_at")
    else:
        job_id, finished_at = job.id, job.finished_at
    event = {
        "id": event_id(job_id, status),
        "object": "event",
        "created_at": int(finished_at or now()),
        "type": event_type(status),
        "data": {"id": job_id},
    }
    return json.dumps(event, separators=(",", ":")).encode()


def deliver(url: str, secret: str, body: bytes, msg_id: str, timeout: float = TIMEOUT_S) -> bool:
    """POST one signed attempt; True on 2xx. Redirects are not followed: a 3xx is a failed attempt."""
    timestamp = int(time.time())
    headers = {
        "content-type": "application/json",
        "user-agent": "ftaas-webhooks/1",
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
    }
    try:
        response = httpx.post(url, content=body, headers=headers, timeout=timeout, follow_redirects=False)
    except httpx.HTTPError as exc:
        log.info("webhook %s to %s failed: %s", msg_id, url, exc)
        return False
    if not response.is_success:
        log.info("webhook %s to %s answered %s", msg_id, url, response.status_code)
    return response.is_success


@dataclass(frozen=True)
class Delivery:
    """One message to one endpoint, at a given attempt (1 = the inline try)."""

    endpoint_id: str
    msg_id: str
    body: bytes
    attempt: int = 1
    base_delay: float = BASE_DELAY_S
    max_attempts: int = MAX_ATTEMPTS

    @property
    def backoff(self) -> float:
        """Seconds to wait after this attempt fails."""
        return self.base_delay * 2 ** (self.attempt - 1)


Schedule = Callable[[Delivery, float], None]  # (next delivery, countdown seconds)


def celery_scheduler(settings: Settings) -> Schedule:
    """Send the next attempt to the `webhooks` queue; the task re-reads the endpoint when it runs."""

    def schedule(delivery: Delivery, countdown: float) -> None:
        app_for(settings).send_task(
            TASK_NAME,
            args=[delivery.endpoint_id, delivery.msg_id, delivery.body.decode(), delivery.attempt],
            kwargs={"base_delay": delivery.base_delay, "max_attempts": delivery.max_attempts},
            countdown=countdown,
            queue=QUEUE,
        )

    return schedule


def attempt(delivery: Delivery, url: str, secret: str, schedule: Schedule, timeout: float = TIMEOUT_S) -> bool:
    """Deliver once; on failure schedule the next attempt with exponential backoff until the cap."""
    if deliver(url, secret, delivery.body, delivery.msg_id, timeout):
        return True
    if delivery.attempt >= delivery.max_attempts:
        log.warning("webhook %s to %s dropped after %d attempts", delivery.msg_id, url, delivery.attempt)
        return False
    try:
        schedule(replace(delivery, attempt=delivery.attempt + 1), delivery.backoff)
    except Exception:  # an unreachable broker loses this retry, never the job's outcome
        log.exception("could not schedule retry of webhook %s", delivery.msg_id)
    return False


def notify_job_outcome(
    session: Session,
    settings: Settings,
    job_id: str,
    status: str,
    *,
    base_delay: float = BASE_DELAY_S,
    max_attempts: int = MAX_ATTEMPTS,
    timeout: float = TIMEOUT_S,
) -> int:
    """Send `fine_tuning.job.<status>` to the job's org endpoints and the provider-wide ones; return how many
    accepted it on the first try (the rest are retried by Celery).

    Call it after the status change has committed: receivers typically `jobs.retrieve` the job at once.
    """
    job = jobs.get(session, job_id)
    if job is None:
        return 0
    targets = endpoints.active_for_org(session, job.org_id)
    body = job_event(job, status)
    msg_id = event_id(job_id, status)
    schedule = celery_scheduler(settings)
    delivered = 0
    for endpoint in targets:
        delivery = Delivery(endpoint.id, msg_id, body, 1, base_delay, max_attempts)
        delivered += attempt(delivery, endpoint.url, endpoint.secret, schedule, timeout)
    return delivered


def notify_after_commit(session: Session, settings: Settings, job_id: str, status: str) -> None:
    """Webhooks for an outcome decided by the API itself (a job cancelled before any worker ran it).

    Delivery happens off the request thread: the first attempt may wait on a slow receiver, and retries are
    Celery tasks anyway.
    """

    def notify() -> None:
        try:
            with session_scope(settings.database_url) as s:
                notify_job_outcome(s, settings, job_id, status)
        except Exception:
            log.exception("webhook notification for %s failed", job_id)

    after_commit(session, lambda: threading.Thread(target=notify, name=f"webhook-{job_id}", daemon=True).start())
