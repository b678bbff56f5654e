"""Celery task for provider alignments queued through the admin API: an alignment id in, the runner does the work."""

from __future__ import annotations

from celery import shared_task

from service.broker import ALIGN_BASE_MODEL
from service.config import get_settings
from worker import registry


@shared_task(name=ALIGN_BASE_MODEL, acks_late=True, ignore_result=True)
def align_base_model(alignment_id: str) -> str:
    """Provider alignment job (Antibody stage 1) on a GPU queue; the result is registered as pre-aligned."""
    from worker.alignment.runner import run_queued  # torch: loaded when an alignment runs, not at import

    return run_queued(get_settings(), alignment_id, registry.worker_id(align_base_model.request.hostname))
