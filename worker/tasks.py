"""Celery tasks: ids in, the runner does the work. No torch here (the runner imports it lazily)."""

from __future__ import annotations

from functools import lru_cache

from celery import shared_task

from service.config import get_settings
from service.queue import ALIGN_BASE_MODEL, PROCESS_JOB
from service.storage import ObjectStore, open_store
from worker import registry


@lru_cache
def store_for(url: str, endpoint_url: str | None, region: str) -> ObjectStore:
    """One store (and boto3 client) per worker process, not one per task."""
    return open_store(url, endpoint_url=endpoint_url, region=region)


@shared_task(name=PROCESS_JOB, acks_late=True, reject_on_worker_lost=True, ignore_result=True)
def process_job(job_id: str) -> str:
    """Run a fine-tuning job. Safe to deliver twice: the DB lease decides who trains."""
    from worker.runner import process_job as run

    settings = get_settings()
    store = store_for(settings.storage_url, settings.s3_endpoint_url, settings.s3_region)
    return run(settings, store, job_id, worker_id=registry.worker_id(process_job.request.hostname))


@shared_task(name=ALIGN_BASE_MODEL, acks_late=True, ignore_result=True)
def align_base_model(alignment_id: str) -> str:
    """Provider alignment job (Antibody stage 1) on a GPU queue; the result is registered as pre-aligned."""
    from worker.alignment_runner import run_queued

    return run_queued(get_settings(), alignment_id, registry.worker_id(align_base_model.request.hostname))
