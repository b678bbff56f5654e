"""Hand pre-screen ids to the broker once the transaction that queued them has committed (as service/queue.py)."""

from __future__ import annotations

import logging

from sqlalchemy.orm import Session

from service.config import Settings
from service.db import after_commit
from service.queue import queue_for

log = logging.getLogger(__name__)

SCREEN_FILE = "ftaas.screen_file"


def send_screen(settings: Settings, screen_id: str, gpu_class: str) -> bool:
    """Publish now; False (logged) if the broker is unreachable: the screen stays queued and a later POST of
    the same screen re-sends it (see ``screening.request``)."""
    from worker.celery_app import app_for

    try:
        app_for(settings).send_task(SCREEN_FILE, args=[screen_id], queue=queue_for(gpu_class))
        return True
    except Exception:
        log.exception("could not enqueue file screen %s", screen_id)
        return False


def enqueue_screen(session: Session, settings: Settings, screen_id: str, gpu_class: str) -> None:
    def send() -> None:
        send_screen(settings, screen_id, gpu_class)

    after_commit(session, send)
