"""File pre-screens: claim a screen, compute Antibody's per-line ratio on its base model, record the result."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from service import logs
from service.config import Settings
from service.db import session_scope
from service.files import repository as files
from service.orm import FileScreenRow
from service.storage import ObjectStore
from worker import artifacts, leases
from worker.evaluation.prescreen import screen_file

log = logging.getLogger(__name__)

MAX_ROWS = 2000  # per-line rows kept in the DB (most suspicious first); the rankings keep every line


def _screen(settings: Settings, store: ObjectStore, screen_id: str, work: Path) -> dict:
    with session_scope(settings.database_url) as session:
        key, base = files.screen_inputs(session, screen_id)
    if key is None or base is None:
        raise ValueError("the file or the base model no longer exists")
    return screen_file(
        artifacts.base_model_dir(settings, store, base),
        artifacts.fetch_file(store, key, work / "train.jsonl"),
        max_seq_len=settings.max_seq_len,
        max_rows=MAX_ROWS,
    )


def run_screen(settings: Settings, store: ObjectStore, screen_id: str, worker_id: str = "local") -> str:
    """queued → running → succeeded | failed. Returns the final status ("skipped" if another worker has it)."""
    with logs.log_context(screen_id=screen_id):
        attempt = leases.claim_run(settings, FileScreenRow, screen_id, worker_id)
        if attempt is None:
            return "skipped"
        logs.bind(attempt=attempt)
        return _run_claimed(settings, store, screen_id, attempt)


def _run_claimed(settings: Settings, store: ObjectStore, screen_id: str, attempt: int) -> str:
    work = settings.work_dir / "screens" / screen_id
    with leases.run_heartbeat(settings, FileScreenRow, screen_id, attempt):
        try:
            outcome: dict = {"result": _screen(settings, store, screen_id, work)}
        except Exception as exc:  # a screen is advisory: record why it failed instead of retrying forever
            log.exception("file screen %s failed", screen_id)
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not leases.finish_run(settings, FileScreenRow, screen_id, attempt, **outcome):
        return "skipped"  # the sweeper gave it to another worker meanwhile
    return "failed" if "error" in outcome else "succeeded"

