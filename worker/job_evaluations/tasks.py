"""Celery task for a provider's re-run of a job's evaluation: an id in, the runner does the work."""

from __future__ import annotations

from celery import shared_task

from service.broker import EVALUATE_JOB
from service.config import get_settings
from worker import registry
from worker.store import job_store_for


@shared_task(name=EVALUATE_JOB, acks_late=True, ignore_result=True)
def evaluate_job(evaluation_id: str) -> str:
    from worker.job_evaluations.runner import run_evaluation  # torch: loaded on the first run, not at import

    settings = get_settings()
    worker_id = registry.worker_id(evaluate_job.request.hostname)
    return run_evaluation(settings, job_store_for(settings), evaluation_id, worker_id=worker_id)
