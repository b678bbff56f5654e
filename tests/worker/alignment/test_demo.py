"""`ftaas up` on a later start: a demo base the provider retired stays retired, and the start says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from service.base_models import repository
from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.storage import open_store
from worker.alignment.demo import DEMO_MODEL, prepare


def test_a_restart_does_not_reinstate_a_retired_demo_base(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    settings = Settings(env="dev", home=tmp_path)
    upgrade(settings.database_url)
    folder = tmp_path / "weights"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    (folder / "model.safetensors").write_bytes(b"\0")
    with session_scope(settings.database_url) as session:
        base_models.register(session, open_store(settings.storage_url), name=DEMO_MODEL, path=str(folder), aligned=True)
        retired_at = base_models.retire(session, DEMO_MODEL).retired_at

    prepare(settings, "http://127.0.0.1:8000")  # a later start: the base is known, so nothing is aligned again
    with session_scope(settings.database_url) as session:
        assert repository.get(session, DEMO_MODEL).retired_at == retired_at
    assert f"{DEMO_MODEL} (retired; `ftaas base-models reinstate {DEMO_MODEL}`" in capsys.readouterr().out
