"""Hand job ids to the Celery broker once the transaction that created them has committed.

Celery only wakes workers; the DB owns job state. If the broker is unreachable the job stays in the DB and the
worker's sweeper re-enqueues it, so a failed send is logged, not raised.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from sqlalchemy import Select, or_, select, update
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import after_commit, session_scope
from service.orm import AlignmentRow, BaseModelRow, FileScreenRow, JobRow

log = logging.getLogger(__name__)

PROCESS_JOB = "ftaas.process_job"
ALIGN_BASE_MODEL = "ftaas.align_base_model"


def queue_for(gpu_class: str) -> str:
    return f"gpu.{gpu_class}"


def send_task(settings: Settings, task: str, object_id: str, gpu_class: str) -> bool:
    """Publish `task(object_id)` on the GPU class's queue now; False (logged) if the broker is unreachable."""
    from worker.celery_app import app_for  # the API needs only the client half of Celery (no torch)

    try:
        app_for(settings).send_task(task, args=[object_id], queue=queue_for(gpu_class))
        return True
    except Exception:
        log.exception("could not enqueue %s(%s); it stays queued in the DB and is re-sent later", task, object_id)
        return False


Published = type[JobRow] | type[FileScreenRow] | type[AlignmentRow]  # tables whose rows carry ``enqueued_at``


def enqueue(session: Session, settings: Settings, task: str, table: Published, object_id: str, gpu_class: str) -> None:
    """Stamp the row's ``enqueued_at`` in this transaction and publish ``task(object_id)`` once it commits.

    If the broker is unreachable the row stays queued; the sweeper re-sends it after ``requeue_after_s``.
    """
    session.execute(update(table).where(table.id == object_id).values(enqueued_at=time.time()))
    after_commit(session, lambda: send_task(settings, task, object_id, gpu_class))


def unsent_for(table: Published, settings: Settings) -> Any:
    """SQL condition: the row was never published, or its last publish is older than ``requeue_after_s``."""
    return or_(table.enqueued_at.is_(None), table.enqueued_at < time.time() - settings.requeue_after_s)


def resend(settings: Settings, task: str, table: Published, object_id: str, gpu_class: Select[Any]) -> None:
    """Publish again (the sweeper), routed by the GPU class ``gpu_class`` selects ("default" if none)."""
    with session_scope(settings.database_url) as session:
        found = session.scalar(gpu_class)
        session.execute(update(table).where(table.id == object_id).values(enqueued_at=time.time()))
    send_task(settings, task, object_id, found or "default")


def enqueue_job(session: Session, settings: Settings, job_id: str, gpu_class: str) -> None:
    enqueue(session, settings, PROCESS_JOB, JobRow, job_id, gpu_class)


def resend_job(settings: Settings, job_id: str) -> None:
    """A job goes to its base model's GPU class."""
    query = select(BaseModelRow.gpu_class).join(JobRow, JobRow.model == BaseModelRow.name).where(JobRow.id == job_id)
    resend(settings, PROCESS_JOB, JobRow, job_id, query)


def notify_outcome_after_commit(session: Session, settings: Settings, job_id: str, status: str) -> None:
    """Webhooks for an outcome decided by the API itself (a job cancelled before any worker ran it).

    Delivery happens off the request thread: the first attempt may wait on a slow receiver, and retries are
    Celery tasks anyway.
    """

    def notify() -> None:
        from worker.webhooks import notify_job_outcome

        try:
            with session_scope(settings.database_url) as s:
                notify_job_outcome(s, settings, job_id, status)
        except Exception:
            log.exception("webhook notification for %s failed", job_id)

    after_commit(session, lambda: threading.Thread(target=notify, name=f"webhook-{job_id}", daemon=True).start())
