"""Celery task for the file pre-screen: a screen id in, Antibody's per-line ratio on the base model out."""

from __future__ import annotations

from celery import shared_task

from service.broker import SCREEN_FILE
from service.config import get_settings
from worker import registry
from worker.store import store_for


@shared_task(name=SCREEN_FILE, acks_late=True, ignore_result=True)
def screen_file(screen_id: str) -> str:
    from worker.screening.runner import run_screen  # torch: loaded when a screen runs, not at import

    settings = get_settings()
    return run_screen(settings, store_for(settings), screen_id, registry.worker_id(screen_file.request.hostname))
