"""Celery task for the file pre-screen: a screen id in, Antibody's per-line ratio on the base model out.

No torch here: ``worker.evaluation.prescreen`` is imported when a screen runs.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from celery import shared_task

from service.config import Settings, get_settings
from service.db import session_scope
from service.files import screening
from service.files.screen_queue import SCREEN_FILE
from service.orm import FileScreenRow
from service.storage import ObjectStore
from worker import artifacts, registry, run_lease
from worker.tasks import store_for

log = logging.getLogger(__name__)

MAX_ROWS = 2000  # per-line rows kept in the DB (most suspicious first); the rankings keep every line


def _screen(settings: Settings, store: ObjectStore, screen_id: str, work: Path) -> dict:
    with session_scope(settings.database_url) as session:
        key, base = screening.inputs(session, screen_id)
    if key is None or base is None:
        raise ValueError("the file or the base model no longer exists")
    from worker.evaluation.prescreen import screen_file

    return screen_file(
        artifacts.base_model_dir(settings, store, base),
        artifacts.fetch_file(store, key, work / "train.jsonl"),
        max_seq_len=settings.max_seq_len,
        max_rows=MAX_ROWS,
    )


def run_screen(settings: Settings, store: ObjectStore, screen_id: str, worker_id: str = "local") -> str:
    """queued → running → succeeded | failed. Returns the final status ("skipped" if another worker has it)."""
    attempt = run_lease.claim(settings, FileScreenRow, screen_id, worker_id)
    if attempt is None:
        return "skipped"
    work = settings.work_dir / "screens" / screen_id
    with run_lease.heartbeat(settings, FileScreenRow, screen_id, attempt):
        try:
            outcome: dict = {"result": _screen(settings, store, screen_id, work)}
        except Exception as exc:  # a screen is advisory: record why it failed instead of retrying forever
            log.exception("file screen %s failed", screen_id)
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not run_lease.finish(settings, FileScreenRow, screen_id, attempt, **outcome):
        return "skipped"  # the sweeper gave it to another worker meanwhile
    return "failed" if "error" in outcome else "succeeded"


@shared_task(name=SCREEN_FILE, acks_late=True, ignore_result=True)
def screen_file(screen_id: str) -> str:
    settings = get_settings()
    store = store_for(settings.storage_url, settings.s3_endpoint_url, settings.s3_region)
    return run_screen(settings, store, screen_id, registry.worker_id(screen_file.request.hostname))
