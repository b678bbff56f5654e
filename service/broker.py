"""The producer side of Celery: the app, task names, queue routing, and handing ids to the broker once the
transaction that created them has committed. Workers build on this app (``worker/celery_app.py``).

Celery only wakes workers; the DB owns job state. If the broker is unreachable the job stays in the DB and the
worker's sweeper re-enqueues it, so a failed send is logged, not raised. Embedded mode uses kombu's filesystem
transport: no server, and the transport's weak delivery guarantees are covered by the lease sweeper.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from celery import Celery
from sqlalchemy.orm import Session

from service import logs
from service.base_models import repository as base_models
from service.config import Settings
from service.db import after_commit, session_scope
from service.files import repository as files
from service.fine_tuning import repository as jobs
from service.job_evaluations import repository as evaluations
from service.orm import AlignmentRow, EvaluationRow, FileScreenRow, JobRow
from service.runs import repository as runs
from service.runs.repository import Published

log = logging.getLogger(__name__)

# Task names are the wire contract between the API and workers of any version: never rename them.
PROCESS_JOB = "ftaas.process_job"
ALIGN_BASE_MODEL = "ftaas.align_base_model"
SCREEN_FILE = "ftaas.screen_file"
EVALUATE_JOB = "ftaas.evaluate_job"
logs.TASK_ID_FIELDS.update(
    {PROCESS_JOB: "job_id", ALIGN_BASE_MODEL: "alignment_id", SCREEN_FILE: "screen_id", EVALUATE_JOB: "evaluation_id"}
)
DELIVER_WEBHOOK = "ftaas.deliver_webhook"
WEBHOOKS_QUEUE = "webhooks"  # webhook retries, consumed by every worker


@lru_cache
def _make_app(broker_url: str, broker_dir: str, time_limit_s: int) -> Celery:
    app = Celery("ftaas", broker=broker_url)
    options: dict[str, Any] = {}
    if broker_url.startswith("filesystem"):
        Path(broker_dir).mkdir(parents=True, exist_ok=True)
        options = {
            "data_folder_in": broker_dir,
            "data_folder_out": broker_dir,
            "control_folder": str(Path(broker_dir) / "control"),  # kombu's default is ./control in the cwd
            "polling_interval": 0.1,
        }
    elif broker_url.startswith(("redis", "rediss")):
        # An unacked task is redelivered after visibility_timeout. Keep it above the hard time limit so a live
        # task is never handed to a second worker; a dead worker is noticed much sooner by its expired lease.
        options = {"visibility_timeout": time_limit_s + 3600}
    app.conf.update(
        broker_transport_options=options,
        task_time_limit=time_limit_s,
        task_default_queue="gpu.default",
        worker_concurrency=1,  # one task per GPU process
        worker_hijack_root_logger=False,
        broker_connection_retry_on_startup=True,
        broker_connection_max_retries=3,
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
    )
    return app


def app_for(settings: Settings) -> Celery:
    """The process's one Celery app for these settings (the API sends with it; a worker also consumes)."""
    return _make_app(settings.broker_url, str(settings.broker_dir.resolve()), settings.task_time_limit_s)


def queue_for(gpu_class: str) -> str:
    return f"gpu.{gpu_class}"


def send_task(settings: Settings, task: str, object_id: str, gpu_class: str) -> bool:
    """Publish `task(object_id)` on the GPU class's queue now; False (logged) if the broker is unreachable."""
    try:
        app_for(settings).send_task(task, args=[object_id], queue=queue_for(gpu_class))
        return True
    except Exception:
        log.exception("could not enqueue %s(%s); it stays queued in the DB and is re-sent later", task, object_id)
        return False


def enqueue(session: Session, settings: Settings, task: str, table: Published, object_id: str, gpu_class: str) -> None:
    """Stamp the row's ``enqueued_at`` in this transaction and publish ``task(object_id)`` once it commits.

    If the broker is unreachable the row stays queued; the sweeper re-sends it after ``requeue_after_s``.
    """
    runs.mark_enqueued(session, table, object_id)
    after_commit(session, lambda: send_task(settings, task, object_id, gpu_class))


def resend(
    settings: Settings, task: str, table: Published, object_id: str, gpu_class: Callable[[Session, str], str | None]
) -> None:
    """Publish again (the sweeper), routed by the GPU class ``gpu_class`` looks up ("default" if none)."""
    with session_scope(settings.database_url) as session:
        found = gpu_class(session, object_id)
        runs.mark_enqueued(session, table, object_id)
    send_task(settings, task, object_id, found or "default")


def enqueue_job(session: Session, settings: Settings, job_id: str, gpu_class: str) -> None:
    enqueue(session, settings, PROCESS_JOB, JobRow, job_id, gpu_class)


def resend_job(settings: Settings, job_id: str) -> None:
    """A job goes to its base model's GPU class."""
    resend(settings, PROCESS_JOB, JobRow, job_id, jobs.gpu_class_of)


def enqueue_screen(session: Session, settings: Settings, screen_id: str, gpu_class: str) -> None:
    enqueue(session, settings, SCREEN_FILE, FileScreenRow, screen_id, gpu_class)


def resend_screen(settings: Settings, screen_id: str) -> None:
    """A screen goes to its base model's GPU class."""
    resend(settings, SCREEN_FILE, FileScreenRow, screen_id, files.screen_gpu_class)


def enqueue_alignment(session: Session, settings: Settings, alignment_id: str, gpu_class: str) -> None:
    enqueue(session, settings, ALIGN_BASE_MODEL, AlignmentRow, alignment_id, gpu_class)


def resend_alignment(settings: Settings, alignment_id: str) -> None:
    """Publish again (the sweeper), on the GPU class the run was started for."""
    resend(settings, ALIGN_BASE_MODEL, AlignmentRow, alignment_id, base_models.alignment_gpu_class)


def enqueue_evaluation(session: Session, settings: Settings, evaluation_id: str, gpu_class: str) -> None:
    enqueue(session, settings, EVALUATE_JOB, EvaluationRow, evaluation_id, gpu_class)


def resend_evaluation(settings: Settings, evaluation_id: str) -> None:
    """Publish again (the sweeper), on the GPU class recorded when it was requested."""
    resend(settings, EVALUATE_JOB, EvaluationRow, evaluation_id, evaluations.gpu_class_of)
