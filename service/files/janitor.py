"""The files janitor: purges expired files and uploads, and removes what killed processes left in the object store.

It runs in the API process (a thread the app's lifespan starts and stops): one pass at startup, then one every
``janitor_interval_s``. Every step is idempotent, so several API processes may run it at once.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import astuple, dataclass
from functools import partial

from service.config import Settings
from service.db import after_commit, session_scope
from service.files import repository
from service.storage import ObjectStore
from service.uploads import janitor as uploads_janitor

log = logging.getLogger(__name__)

_PURGE_BATCH = 200
# `files/<file id>.<ext>`: uploads (.jsonl) and the workers' result files (.csv, .json, .html).
_FILE_KEY = re.compile(r"files/(file-[^/.]+)\.[^/]+")


@dataclass(frozen=True)
class Swept:
    """What one pass removed."""

    stale_uploads: int
    orphans: int
    expired: int
    expired_uploads: int = 0  # pending uploads past their hour (service/uploads/janitor.py)
    upload_parts: int = 0  # their parts, and part objects left without a row


def sweep(settings: Settings, store: ObjectStore, at: float | None = None) -> Swept:
    """One pass; ``at`` (epoch seconds, default now) is the clock for both the age threshold and expiry."""
    at = time.time() if at is None else at
    cutoff = at - settings.janitor_min_age_s
    stale = store.abort_stale_uploads(cutoff)
    orphans = remove_orphans(settings, store, cutoff)
    expired = purge_expired(settings, store, int(at))
    expired_uploads, upload_parts = uploads_janitor.sweep(settings, store, int(at), cutoff)
    return Swept(stale, orphans, expired, expired_uploads, upload_parts)


def remove_orphans(settings: Settings, store: ObjectStore, before: float) -> int:
    """Delete the objects under ``files/`` last modified before ``before`` that no files row names.

    A process killed between storing an upload's bytes and committing its row leaves one, and so does one killed
    between a delete's commit and its byte deletion. ``before`` must lie well behind now: an upload's row commits
    a moment after its bytes, and S3 dates a multipart object by when its upload began, not when it completed.
    """
    candidates: dict[str, str] = {}
    for key, modified in store.list_modified("files/"):
        match = _FILE_KEY.fullmatch(key)
        if match and modified < before:
            candidates[key] = match.group(1)
    if not candidates:
        return 0
    with session_scope(settings.database_url) as session:
        known = repository.existing_ids(session, set(candidates.values()))
    orphans = [key for key, file_id in candidates.items() if file_id not in known]
    for key in orphans:
        store.delete(key)
    return len(orphans)


def purge_expired(settings: Settings, store: ObjectStore, at: int) -> int:
    """Delete the files expired at ``at`` that no unfinished job uses: rows first, then their bytes."""
    purged = 0
    while True:
        with session_scope(settings.database_url) as session:
            rows = repository.purgeable(session, at, _PURGE_BATCH)
            if rows:
                repository.remove_all(session, rows)
            keys = [row.object_key for row in rows if row.object_key]
            # As for a DELETE, bytes go after the commit: a failed purge never leaves a row without its bytes, and
            # bytes a crash leaves behind here are orphans that the next pass removes.
            after_commit(session, partial(_delete_all, store, keys))
        purged += len(rows)
        if len(rows) < _PURGE_BATCH:
            return purged


def _delete_all(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)


class Janitor:
    """The background thread: a pass when started, then one every ``janitor_interval_s`` until ``stop()``."""

    def __init__(self, settings: Settings, store: ObjectStore) -> None:
        self.settings = settings
        self.store = store
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.settings.janitor_interval_s <= 0:
            return
        self._thread = threading.Thread(target=self._loop, name="files-janitor", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _loop(self) -> None:
        while not self._stopping.is_set():
            try:
                swept = sweep(self.settings, self.store)
            except Exception:
                # The store or the DB may be briefly unreachable; the next pass retries everything.
                log.exception("files janitor pass failed")
            else:
                if any(astuple(swept)):
                    log.info("files janitor: %s", swept)
            self._stopping.wait(self.settings.janitor_interval_s)


@contextmanager
def running(settings: Settings, store: ObjectStore) -> Iterator[Janitor]:
    """The janitor for the lifetime of the block (the API's lifespan)."""
    janitor = Janitor(settings, store)
    janitor.start()
    try:
        yield janitor
    finally:
        janitor.stop()
