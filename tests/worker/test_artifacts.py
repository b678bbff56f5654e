"""Worker scratch: store-registered base models are cached per registration, so a re-aligned base is re-fetched."""

from __future__ import annotations

import os
from pathlib import Path

from service.config import Settings
from service.orm import BaseModelRow
from service.storage import ObjectStore
from worker import artifacts


def publish(store: ObjectStore, weights: bytes, registered_at: int) -> BaseModelRow:
    store.put_bytes("base-models/m/config.json", b"{}")
    store.put_bytes("base-models/m/model.safetensors", weights)
    return BaseModelRow(name="m", path="store://base-models/m", aligned=True, manifest={}, created_at=registered_at)


def test_a_reregistered_base_is_downloaded_again_and_old_versions_pruned(
    object_store: ObjectStore, tmp_path: Path
) -> None:
    settings = Settings(home=tmp_path)
    first = artifacts.base_model_dir(settings, object_store, publish(object_store, b"v1", 100))
    assert (first / "model.safetensors").read_bytes() == b"v1"
    assert artifacts.base_model_dir(settings, object_store, publish(object_store, b"v1", 100)) == first  # cached
    os.utime(first, (1, 1))  # oldest
    second = artifacts.base_model_dir(settings, object_store, publish(object_store, b"v2", 200))
    assert second != first and (second / "model.safetensors").read_bytes() == b"v2"
    assert first.exists()  # a job may still be reading it
    third = artifacts.base_model_dir(settings, object_store, publish(object_store, b"v3", 300))
    assert (third / "model.safetensors").read_bytes() == b"v3"
    assert not first.exists() and second.exists()  # two newest versions kept


def test_a_local_base_is_used_in_place(object_store: ObjectStore, tmp_path: Path) -> None:
    row = BaseModelRow(name="m", path=str(tmp_path), aligned=True, manifest={}, created_at=1)
    assert artifacts.base_model_dir(Settings(home=tmp_path), object_store, row) == tmp_path
