"""The inference server's weights (`ftaas inference --base NAME`): a retired base still starts, because the models
fine-tuned on it are still served on it (and `ftaas up` restarts it); a name never registered is refused."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.storage import open_store
from worker.inference.main import base_model_folder


def test_a_retired_base_is_still_served_and_an_unknown_one_is_refused(tmp_path: Path) -> None:
    settings = Settings(env="dev", home=tmp_path)
    upgrade(settings.database_url)
    store = open_store(settings.storage_url)
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0")
    with session_scope(settings.database_url) as session:
        base_models.register(session, store, name="old", path=str(folder), aligned=True)
        base_models.retire(session, "old")
    assert base_model_folder(settings, store, "old") == folder.resolve()
    with pytest.raises(SystemExit, match="never-registered"):
        base_model_folder(settings, store, "never-registered")
