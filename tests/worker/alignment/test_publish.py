"""Publishing an aligned base model through an S3 outage: the upload is retried, then the cut-short model is refused
by every reader until a publish completes; nothing trains on or serves half of it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.base_models import repository as base_models
from service.db import session_scope
from service.migrate import upgrade
from service.orm import BaseModelRow
from service.storage import open_store
from tests.worker.conftest import Outage
from worker import artifacts
from worker.alignment import runner
from worker.alignment.spec import AlignmentSpec
from worker.store import StoreUnavailable

NAME = "tiny-republished"


def _aligned(folder: Path, weights: bytes) -> Path:
    """A merged model folder as align_model leaves it (the alignment itself is not under test here)."""
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(weights)
    (folder / "tokenizer.json").write_text("{}")
    (folder / "alignment_manifest.json").write_text(json.dumps({"weights": weights.decode()}))
    return folder


def _row(outage: Outage) -> BaseModelRow:
    with session_scope(outage.settings.database_url) as session:
        row = base_models.get(session, NAME)
        assert row is not None
        session.expunge(row)
        return row


def test_an_s3_outage_mid_publish_never_leaves_half_a_model_loadable(
    outage: Outage, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = outage.settings
    upgrade(settings.database_url)
    spec = AlignmentSpec(name=NAME)
    folders = iter(_aligned(tmp_path / v, v.encode() * 64) for v in ("v1", "v2", "v3"))
    monkeypatch.setattr(runner, "align_model", lambda *_a, **_k: next(folders))
    plain = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url)

    runner.run_and_publish(settings, spec)
    first = artifacts.base_model_dir(settings, plain, _row(outage))
    assert (first / "model.safetensors").read_bytes() == b"v1" * 64

    outage.down_at_put(f"base-models/{NAME}/model.safetensors")  # config.json of v2 is up by then
    with pytest.raises(StoreUnavailable, match="failed 2 times"):  # retried with backoff, then given up
        runner.run_and_publish(settings, spec)
    outage.end()
    assert outage.proxy.tripped_at is not None and len(outage.proxy.refused) >= 2

    cut = _row(outage)
    assert cut.manifest == {"weights": "v1" * 64}  # still v1's registration, over a prefix that is no longer v1
    elsewhere = settings.model_copy(update={"home": tmp_path / "another-worker"})  # no cached copy of v1
    with pytest.raises(artifacts.IncompleteUpload, match=f"Base model {NAME} .* cut short"):
        artifacts.base_model_dir(elsewhere, plain, cut)
    assert not (elsewhere.work_dir / "base-models" / NAME).exists()  # refused before a byte was fetched

    runner.run_and_publish(settings, spec)  # the endpoint is back: publishing again repairs the name
    again = artifacts.base_model_dir(elsewhere, plain, _row(outage))
    assert (again / "model.safetensors").read_bytes() == b"v3" * 64
    assert sorted(p.name for p in again.iterdir()) == [
        "alignment_manifest.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert not plain.exists(f"base-models/{NAME}/{artifacts.PUBLISHING}")
