"""File pre-screen (issue 6): Antibody's ratio r_i of every line on a pre-aligned base model, before any training.

One screen per (file, base model), computed once by a GPU worker (``worker/screening/``) and cached in
``file_screens``. The API object ``file.screen`` is an additive extension of the Files API:

    {"id": "fscr_…", "object": "file.screen", "file_id", "model", "status": queued|running|succeeded|failed,
     "created_at", "finished_at", "result": {…} | null, "error": str | null}

``result`` is ``worker.evaluation.prescreen.screen_file``'s dict (``RESULT_SCHEMA``). A failed screen, or a
succeeded one of an older schema (computed before an upgrade), is recomputed on the next POST; a queued one that no
worker took for ``requeue_after_s`` is re-sent, by the next POST or by a worker's sweeper (the worker's
compare-and-set makes a duplicate delivery a no-op).
"""

from __future__ import annotations

import time
from typing import Literal

from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.base_models import service as base_models
from service.broker import enqueue_screen
from service.config import Settings
from service.errors import InvalidRequest, NotFound
from service.files import repository as files
from service.orm import BaseModelRow, FileRow, FileScreenRow

ScreenStatus = Literal["queued", "running", "succeeded", "failed"]
PENDING = ("queued", "running")
RESULT_SCHEMA = 2  # worker.evaluation.prescreen.SCHEMA_VERSION (a test keeps them equal; this side imports no torch)


def _screenable_file(session: Session, principal: Principal, file_id: str) -> FileRow:
    row = files.get(session, principal.org_id, file_id)
    if row is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    if row.status != "processed" or row.object_key is None:
        raise InvalidRequest(
            f"File {file_id} cannot be screened: its status is '{row.status}' ({row.status_details or 'no content'}).",
            param="file_id",
            code="invalid_file",
        )
    return row


def _usable_base(session: Session, settings: Settings, model: str) -> BaseModelRow:
    base = base_models.usable(session, settings, model)
    if base is None:
        base_models.refuse_retired(session, settings, model, "new pre-screens")
        raise InvalidRequest(
            f"Model '{model}' is not available for screening. Use one of the provider's pre-aligned base models "
            "listed by GET /v1/models.",
            param="model",
            code="model_not_available",
        )
    return base


def request(session: Session, settings: Settings, principal: Principal, file_id: str, model: str) -> FileScreenRow:
    """The screen of ``file_id`` on base ``model``: created and queued on first request, otherwise the cached
    one (re-queued if it failed or its result is of an older schema, re-sent if no worker took it for
    ``requeue_after_s``)."""
    file = _screenable_file(session, principal, file_id)
    base = _usable_base(session, settings, model)
    row = files.get_screen(session, file.id, base.name)
    if row is None:
        row = files.insert_screen(session, file, base.name)
        if row.status == "queued":
            enqueue_screen(session, settings, row.id, base.gpu_class)
    elif _stale(row) and files.requeue_screen(session, row.id, row.status):
        session.refresh(row)
        enqueue_screen(session, settings, row.id, base.gpu_class)
    elif row.status == "queued" and (row.enqueued_at or 0) < time.time() - settings.requeue_after_s:
        enqueue_screen(session, settings, row.id, base.gpu_class)
    return row


def retrieve(session: Session, principal: Principal, file_id: str, model: str | None) -> FileScreenRow:
    """The screen of one of the org's files on ``model`` (or its most recent screen when no model is given)."""
    file = files.get(session, principal.org_id, file_id)
    if file is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    row = files.get_screen(session, file.id, model) if model else files.latest_screen(session, file.id)
    if row is None:
        on = f" on model '{model}'" if model else ""
        raise NotFound(
            f"File {file_id} has not been screened{on}. POST /v1/files/{file_id}/screen first.", param="model"
        )
    return row


def _stale(row: FileScreenRow) -> bool:
    """Failed, or succeeded with a result an older worker wrote."""
    if row.status == "failed":
        return True
    return row.status == "succeeded" and (row.result or {}).get("schema_version", 1) < RESULT_SCHEMA
