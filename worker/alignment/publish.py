"""Publishing an aligned base model to `base-models/{name}/` so that no reader ever loads half of one.

Aligning a name again rewrites its prefix in place (the layout the compose file's vLLM mirror and the README's
bench commands read). An object store has no multi-object rename, so the prefix is fenced instead: the marker
``artifacts.PUBLISHING`` goes up first, then the old files are deleted and the new ones uploaded (manifest last),
the row is registered, and the marker comes down last. Every reader of a store-registered base
(``artifacts.base_model_dir``: fine-tuning jobs, the inference server) refuses a prefix that holds it.

The uploads ride out an outage through the retrying store the caller passes (``worker.store.job_store_for``).
When one outlasts that, the prefix keeps its marker: the model is refused by name, with a message saying why,
until it is published again, and nothing trains on or serves a half-written copy. Before, the live prefix was
deleted and refilled unfenced, so a cut left half a model registered and a worker that fetched it cached it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.storage import ObjectStore
from worker.alignment.spec import AlignmentSpec
from worker.artifacts import PUBLISHING, upload_order

MANIFEST = "alignment_manifest.json"


def publish(settings: Settings, store: ObjectStore, spec: AlignmentSpec, merged: Path) -> dict[str, Any]:
    """Upload the aligned folder to `base-models/{name}/` (fenced, manifest last) and register it as pre-aligned."""
    prefix = f"base-models/{spec.name}/"
    store.put_bytes(prefix + PUBLISHING, json.dumps({"name": spec.name}).encode())
    for key in store.list(prefix):
        if key != prefix + PUBLISHING:
            store.delete(key)
    for path in upload_order(merged, last=MANIFEST):
        store.put_file(prefix + path.relative_to(merged).as_posix(), path)
    manifest = json.loads((merged / MANIFEST).read_text())
    with session_scope(settings.database_url) as session:
        row = base_models.register(
            session,
            store,
            name=spec.name,
            path=base_models.STORE_SCHEME + prefix.rstrip("/"),
            aligned=True,
            gpu_class=spec.gpu_class,
            manifest=manifest,
        )
        result = base_models.base_model_object(row)
    store.delete(prefix + PUBLISHING)
    return result
