"""Hand job ids to the Celery broker once the transaction that created them has committed.

Celery only wakes workers; the DB owns job state. If the broker is unreachable the job stays in the DB and the
worker's sweeper re-enqueues it, so a failed send is logged, not raised.
"""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from service.config import Settings
from service.db import after_commit

log = logging.getLogger(__name__)

PROCESS_JOB = "ftaas.process_job"


def queue_for(gpu_class: str) -> str:
    return f"gpu.{gpu_class}"


def enqueue_job(session: Session, settings: Settings, job_id: str, gpu_class: str) -> None:
    def send() -> None:
        from worker.celery_app import app_for  # the API needs only the client half of Celery (no torch)

        try:
            app_for(settings).send_task(PROCESS_JOB, args=[job_id], queue=queue_for(gpu_class))
        except Exception:
            log.exception("could not enqueue job %s; the sweeper will retry", job_id)

    after_commit(session, send)
