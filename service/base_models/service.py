"""Provider base models: registration of a local HF model folder or an object-store prefix, and retirement.

A retired base takes nothing new under its name: no fine-tuning job (on it, or continuing a model trained on it), no
file pre-screen, no alignment (which would rewrite the weights its fine-tuned models still serve on), and GET
/v1/models leaves it out. What exists keeps working: queued, running and paused jobs, the fine-tuned models and
checkpoints built on it and its inference server; retiring deletes no file. Only ``reinstate`` undoes it:
registering the name again (the admin API, an alignment that was already running) keeps it retired, so nothing
puts a base back on offer that the provider took off.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.base_models import repository
from service.base_models.schemas import BaseModelObject
from service.config import Settings
from service.errors import AppError, InvalidRequest, NotFound
from service.ids import now
from service.orm import BaseModelRow
from service.storage import ObjectStore

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STORE_SCHEME = "store://"
RETIRED = "model_retired"  # the error code of a request refused because its base was retired


def _check_local(path: Path) -> None:
    if not (path / "config.json").is_file():
        raise InvalidRequest(f"{path} is not a Hugging Face model folder (no config.json).", param="path")
    if not any(path.glob("*.safetensors")):
        raise InvalidRequest(f"{path} has no *.safetensors weights (pickle weights are not loaded).", param="path")


def _check_store(store: ObjectStore, prefix: str) -> None:
    keys = store.list(prefix.rstrip("/") + "/")
    if not any(k.endswith("config.json") for k in keys) or not any(k.endswith(".safetensors") for k in keys):
        raise InvalidRequest(f"store prefix '{prefix}' holds no config.json and *.safetensors.", param="path")


def check_name(name: str) -> None:
    if not NAME.match(name):
        raise InvalidRequest("name may use letters, digits, '.', '_' and '-' (max 128).", param="name")


def register(
    session: Session,
    store: ObjectStore,
    *,
    name: str,
    path: str,
    aligned: bool,
    gpu_class: str = "default",
    manifest: dict[str, Any] | None = None,
) -> BaseModelRow:
    """Register ``name``, or replace it; a retired name stays retired (see above)."""
    check_name(name)
    if path.startswith(STORE_SCHEME):
        _check_store(store, path.removeprefix(STORE_SCHEME))
    else:
        local = Path(path).expanduser().resolve()
        _check_local(local)
        path = str(local)
    known = repository.get(session, name)
    row = BaseModelRow(
        name=name,
        path=path,
        aligned=aligned,
        gpu_class=gpu_class,
        manifest=manifest or {},
        created_at=now(),
        retired_at=known.retired_at if known is not None else None,
    )
    return repository.upsert(session, row)


def servable(session: Session, settings: Settings, name: str) -> BaseModelRow | None:
    """The base model that work already built on it runs on: registered and pre-aligned (or alignment not
    enforced), retired or not (a paused job resuming, an inference server serving its fine-tuned models)."""
    row = repository.get(session, name)
    if row is None or not (row.aligned or settings.allow_unaligned_base):
        return None
    return row


def usable(session: Session, settings: Settings, name: str) -> BaseModelRow | None:
    """The base model if customers may start new work on it: servable and not retired."""
    row = servable(session, settings, name)
    return row if row is not None and row.retired_at is None else None


def listed(session: Session, settings: Settings) -> list[BaseModelRow]:
    return repository.list_all(session, aligned_only=not settings.allow_unaligned_base, offered_only=True)


def why_retired(session: Session, settings: Settings, name: str, refused: str) -> str | None:
    """If the provider retired ``name``: why it refuses ``refused`` (e.g. "new fine-tuning jobs"), naming the bases
    on offer instead, so the caller can switch without another request. None if it is not retired."""
    row = repository.get(session, name)
    if row is None or row.retired_at is None:
        return None
    when = datetime.fromtimestamp(row.retired_at, UTC).date().isoformat()
    offered = ", ".join(b.name for b in listed(session, settings)) or "none at the moment"
    return (
        f"The base model '{name}' was retired by the provider on {when} and takes no {refused}. "
        f"Available base models: {offered} (GET /v1/models)."
    )


def refuse_retired(
    session: Session,
    settings: Settings,
    name: str,
    refused: str,
    error: type[AppError] = InvalidRequest,
    lead: str = "",
) -> None:
    """Raise ``error`` (``model_retired``, naming ``model``) if the provider retired ``name``; ``lead`` opens the
    message (e.g. which fine-tuned model was trained on it)."""
    retired = why_retired(session, settings, name, refused)
    if retired is not None:
        raise error(lead + retired, param="model", code=RETIRED)


def retire(session: Session, name: str) -> BaseModelRow:
    """Take ``name`` off offer (idempotent: a retired base keeps its first ``retired_at``)."""
    return _found(repository.set_retired(session, name, now()), name)


def reinstate(session: Session, name: str) -> BaseModelRow:
    """Offer a retired ``name`` again (a base that is not retired is left as it is)."""
    return _found(repository.set_retired(session, name, None), name)


def _found(row: BaseModelRow | None, name: str) -> BaseModelRow:
    if row is None:
        raise NotFound(f"No such base model: {name}", param="name")
    return row


def base_model_object(row: BaseModelRow) -> dict[str, Any]:
    """The admin API's base-model object as a JSON-ready dict (for the CLI and the alignment run's result)."""
    return BaseModelObject.from_row(row).model_dump(mode="json")
