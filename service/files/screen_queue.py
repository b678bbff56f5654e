"""Publish pre-screens to the broker (``service.queue``'s helpers, keyed by the screen's base model)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.config import Settings
from service.orm import BaseModelRow, FileScreenRow
from service.queue import enqueue, resend

SCREEN_FILE = "ftaas.screen_file"


def enqueue_screen(session: Session, settings: Settings, screen_id: str, gpu_class: str) -> None:
    enqueue(session, settings, SCREEN_FILE, FileScreenRow, screen_id, gpu_class)


def resend_screen(settings: Settings, screen_id: str) -> None:
    """A screen goes to its base model's GPU class."""
    query = (
        select(BaseModelRow.gpu_class)
        .join(FileScreenRow, FileScreenRow.base_model == BaseModelRow.name)
        .where(FileScreenRow.id == screen_id)
    )
    resend(settings, SCREEN_FILE, FileScreenRow, screen_id, query)
