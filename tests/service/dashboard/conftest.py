"""Fixtures of the dashboard tests: a base model on a GPU class of its own."""

from __future__ import annotations

import uuid

import pytest

from service.base_models import service as base_models
from service.db import session_scope
from tests.live import LiveAPI


@pytest.fixture
def gpu_base(api: LiveAPI) -> tuple[str, str]:
    """A fresh aligned base model on its own GPU class, so its queue holds only this test's messages."""
    name, gpu_class = f"dash-{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}"
    manifest = {"before": {"hs": 42.0}, "after": {"hs": 6.0}}
    with session_scope(api.settings.database_url) as session:
        base_models.register(
            session, api.store, name=name, path=str(api.model_dir), aligned=True, gpu_class=gpu_class, manifest=manifest
        )
    return name, gpu_class
