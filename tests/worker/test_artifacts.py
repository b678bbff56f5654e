"""Worker scratch: store-registered base models are cached per registration, so a re-aligned base is re-fetched;
an adapter an S3 outage cut short is never loadable."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from service.config import Settings
from service.orm import BaseModelRow
from service.storage import ObjectStore, open_store
from tests.worker.conftest import Outage
from worker import artifacts
from worker.inference.main import adapter_resolver
from worker.store import StoreUnavailable, job_store_for


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


def test_an_adapter_upload_cut_by_an_s3_outage_leaves_nothing_loadable(outage: Outage, tmp_path: Path) -> None:
    adapter = tmp_path / "adapter"  # what PEFT's save_pretrained writes
    adapter.mkdir()
    for name, data in (("README.md", b"card"), ("adapter_model.safetensors", b"w" * 4096),
                       ("adapter_config.json", b'{"r": 8}')):  # fmt: skip
        (adapter / name).write_bytes(data)
    settings = outage.settings
    store = job_store_for(settings)  # the store a fine-tuning task passes its run
    store.ensure_bucket()
    prefix = "jobs/ftjob-cut/adapter/"
    outage.down_at_put(prefix + "adapter_model.safetensors")
    with pytest.raises(StoreUnavailable, match="failed 2 times"):  # retried with backoff, then given up
        artifacts.upload_outputs(store, "ftjob-cut", adapter, None)
    outage.end()

    plain = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url)
    assert plain.list(prefix) == [prefix + "README.md"]  # cut mid-upload: no config, so no reader takes it
    with pytest.raises(FileNotFoundError, match="no adapter"):  # the inference server's store:// resolver
        adapter_resolver(settings, plain)("store://" + prefix)


def test_republishing_an_adapter_never_leaves_its_prefix_unloadable(object_store: ObjectStore, tmp_path: Path) -> None:
    """A retried attempt publishes over the adapter a deployed model serves: every moment, a reader finds one."""
    adapter = tmp_path / "adapter"
    adapter.mkdir()
    for name in ("README.md", "adapter_model.safetensors", "adapter_config.json"):
        (adapter / name).write_bytes(b"first " + name.encode())
    prefix = artifacts.upload_outputs(object_store, "ftjob-again", adapter, None)
    (adapter / "adapter_model.safetensors").write_bytes(b"second")
    seen = []
    put_file = object_store.put_file

    def watched(key: str, path: Path) -> None:
        seen.append(object_store.exists(prefix + "adapter_config.json"))
        put_file(key, path)

    object_store.put_file = watched  # type: ignore[method-assign]
    artifacts.upload_outputs(object_store, "ftjob-again", adapter, None)
    assert seen == [True, True, True]
    assert object_store.get_bytes(prefix + "adapter_model.safetensors") == b"second"
