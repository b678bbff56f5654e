"""Hand pre-screen ids to the broker once the transaction that queued them has committed (as service/queue.py)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import after_commit, session_scope
from service.orm import BaseModelRow, FileScreenRow
from service.queue import send_task

SCREEN_FILE = "ftaas.screen_file"


def send_screen(settings: Settings, screen_id: str, gpu_class: str) -> bool:
    """Publish now; False (logged) if the broker is unreachable: the screen stays queued and a later POST of
    the same screen re-sends it (see ``screening.request``)."""
    return send_task(settings, SCREEN_FILE, screen_id, gpu_class)


def enqueue_screen(session: Session, settings: Settings, screen_id: str, gpu_class: str) -> None:
    after_commit(session, lambda: send_screen(settings, screen_id, gpu_class))


def resend_screen(settings: Settings, screen_id: str) -> None:
    """Publish a re-queued screen again (the sweeper), routed by its base model's GPU class."""
    with session_scope(settings.database_url) as session:
        gpu_class = session.scalar(
            select(BaseModelRow.gpu_class)
            .join(FileScreenRow, FileScreenRow.base_model == BaseModelRow.name)
            .where(FileScreenRow.id == screen_id)
        )
    send_screen(settings, screen_id, gpu_class or "default")
