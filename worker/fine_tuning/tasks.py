"""Celery task for fine-tuning jobs: a job id in, the runner does the work."""

from __future__ import annotations

from celery import shared_task

from service.broker import PROCESS_JOB
from service.config import get_settings
from worker import registry
from worker.fine_tuning.scheduling import wake_next
from worker.store import job_store_for


@shared_task(name=PROCESS_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_job(job_id: str) -> str:
    """Run a fine-tuning job. Safe to deliver twice: the DB lease decides who trains."""
    from worker.fine_tuning.runner import run_job  # torch: loaded on the first job, not at import

    settings = get_settings()
    worker_id = registry.worker_id(process_job.request.hostname)
    outcome = run_job(settings, job_store_for(settings), job_id, worker_id=worker_id)
    if outcome != "skipped":  # a run ended: a job passed over at its org's running limit may start now
        wake_next(settings, job_id)
    return outcome
