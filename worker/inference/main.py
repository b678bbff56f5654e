"""Wiring of the embedded inference server (`ftaas inference`): settings, the base model's weights, adapter paths.

``lora_path`` values the API sends are ``inference_lora_root + <object-store prefix>``; with the default root
``store://`` the adapter folder is downloaded from the object store once into ``<work>/inference/adapters/`` (a
content-addressed name per prefix, published by rename so two loads never see half a folder). Any other value is
a local folder path, as vLLM reads it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.storage import ObjectStore
from worker import artifacts
from worker.inference.engine import Engine
from worker.inference.server import create_app
from worker.store import store_for

STORE_ROOT = "store://"


def adapter_resolver(settings: Settings, store: ObjectStore):
    """``lora_path`` → a local adapter folder."""
    cache = settings.work_dir / "inference" / "adapters"

    def resolve(lora_path: str) -> Path:
        if not lora_path.startswith(STORE_ROOT):
            return Path(lora_path)
        prefix = lora_path.removeprefix(STORE_ROOT).rstrip("/") + "/"
        final = cache / hashlib.sha256(prefix.encode()).hexdigest()[:24]
        if (final / "adapter_config.json").is_file():
            return final
        if not store.exists(prefix + "adapter_config.json"):
            raise FileNotFoundError(f"no adapter at {lora_path}")
        return artifacts.fetch_dir(store, prefix, final)

    return resolve


def base_model_folder(settings: Settings, store: ObjectStore, name: str) -> Path:
    with session_scope(settings.database_url) as session:
        row = base_models.servable(session, settings, name)  # retired too: its fine-tuned models are still served
        if row is None:
            raise SystemExit(f"base model {name!r} is not registered (or not aligned); see `ftaas base-models list`")
        session.expunge(row)
    return artifacts.base_model_dir(settings, store, row)


def build_app(settings: Settings, base: str, model_dir: Path | None = None, device: str | None = None):
    """The ASGI app serving ``base`` (its registered weights unless ``model_dir`` is given)."""
    store = store_for(settings)
    folder = model_dir or base_model_folder(settings, store, base)
    engine = Engine(folder, max_adapters=settings.inference_max_adapters, max_batch=settings.inference_max_batch,
                    max_queue=settings.inference_max_queue, batch_window_s=settings.inference_batch_window_ms / 1000,
                    device=device).start()
    return create_app(engine, base, adapter_resolver(settings, store), request_timeout_s=settings.inference_timeout_s,
                      default_max_tokens=settings.inference_max_tokens)
