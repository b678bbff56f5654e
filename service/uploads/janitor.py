"""The uploads' part of the files janitor pass (`service.files.janitor.sweep` calls it).

Expired uploads are marked so and lose their parts; so does any part that was stored just as its upload ended.
Part objects with no row (a process killed between storing the bytes and committing the row, or between a
commit and the deletion of the bytes) go once they are older than the janitor's age threshold.
"""

from __future__ import annotations

import re
from functools import partial

from service.config import Settings
from service.db import after_commit, session_scope
from service.storage import ObjectStore
from service.uploads import repository

_BATCH = 200
_PART_KEY = re.compile(r"uploads/upload_[^/]+/(part_[^/]+)")


def sweep(settings: Settings, store: ObjectStore, at: int, before: float) -> tuple[int, int]:
    """(uploads expired at ``at``, part objects removed); orphans count only if last modified before ``before``."""
    with session_scope(settings.database_url) as session:
        expired = repository.expire_due(session, at)
    removed = 0
    while True:
        with session_scope(settings.database_url) as session:
            rows = repository.dead_parts(session, _BATCH)
            if rows:
                repository.remove_parts(session, rows)
            # Rows first, bytes after the commit: bytes a crash leaves here are orphans for the next pass.
            after_commit(session, partial(_delete_all, store, [row.object_key for row in rows]))
        removed += len(rows)
        if len(rows) < _BATCH:
            break
    return expired, removed + _remove_orphans(settings, store, before)


def _remove_orphans(settings: Settings, store: ObjectStore, before: float) -> int:
    candidates: dict[str, str] = {}
    for key, modified in store.list_modified("uploads/"):
        match = _PART_KEY.fullmatch(key)
        if match and modified < before:
            candidates[key] = match.group(1)
    if not candidates:
        return 0
    with session_scope(settings.database_url) as session:
        known = repository.live_part_ids(session, set(candidates.values()))
    orphans = [key for key, part_id in candidates.items() if part_id not in known]
    _delete_all(store, orphans)
    return len(orphans)


def _delete_all(store: ObjectStore, keys: list[str]) -> None:
    for key in keys:
        store.delete(key)
