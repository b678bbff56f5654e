"""Provider base models: registration of a local HF model folder or an object-store prefix."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from service.base_models import repository
from service.base_models.schemas import BaseModelObject
from service.config import Settings
from service.errors import InvalidRequest
from service.ids import now
from service.orm import BaseModelRow
from service.storage import ObjectStore

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
STORE_SCHEME = "store://"


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
    check_name(name)
    if path.startswith(STORE_SCHEME):
        _check_store(store, path.removeprefix(STORE_SCHEME))
    else:
        local = Path(path).expanduser().resolve()
        _check_local(local)
        path = str(local)
    row = BaseModelRow(
        name=name, path=path, aligned=aligned, gpu_class=gpu_class, manifest=manifest or {}, created_at=now()
    )
    return repository.upsert(session, row)


def usable(session: Session, settings: Settings, name: str) -> BaseModelRow | None:
    """The base model if customers may fine-tune it: registered and pre-aligned (or alignment not enforced)."""
    row = repository.get(session, name)
    if row is None or not (row.aligned or settings.allow_unaligned_base):
        return None
    return row


def listed(session: Session, settings: Settings) -> list[BaseModelRow]:
    return repository.list_all(session, aligned_only=not settings.allow_unaligned_base)


def base_model_object(row: BaseModelRow) -> dict[str, Any]:
    """The admin API's base-model object as a JSON-ready dict (for the CLI and the alignment run's result)."""
    return BaseModelObject.from_row(row).model_dump(mode="json")
