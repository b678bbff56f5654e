"""A live uvicorn server per backend (SQLite + file:// store, PostgreSQL + S3 store), driven over real HTTP."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
import uvicorn

from service.app import create_app
from service.auth.service import create_key
from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.storage import ObjectStore, S3ObjectStore
from tests import servers
from worker.assets import tiny_model_dir


@dataclass
class LiveAPI:
    backend: str
    base_url: str  # http://127.0.0.1:PORT
    settings: Settings
    store: ObjectStore
    model_dir: Path

    @property
    def v1(self) -> str:
        return self.base_url + "/v1"

    def new_key(self, org: str | None = None, *, admin: bool = False) -> str:
        with session_scope(self.settings.database_url) as session:
            return create_key(session, org or f"org-{uuid.uuid4().hex[:10]}", admin=admin)

    def client(self, key: str | None = None, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(api_key=key or self.new_key(), base_url=self.v1, max_retries=0, **kwargs)

    def register_base(self, name: str, *, aligned: bool = True) -> None:
        with session_scope(self.settings.database_url) as session:
            base_models.register(session, self.store, name=name, path=str(self.model_dir), aligned=aligned)


def _serve(settings: Settings) -> tuple[str, uvicorn.Server, threading.Thread]:
    app = create_app(settings)
    port = servers.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    return f"http://127.0.0.1:{port}", server, thread


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


def _settings(request: pytest.FixtureRequest, home: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(home=home, broker_url="filesystem://", max_upload_bytes=8 * 1024 * 1024,
                        max_line_bytes=64 * 1024)
    database_url = request.getfixturevalue("postgres_url")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"ftaas-api-{uuid.uuid4().hex[:12]}"
    return Settings(
        home=home,
        database_url=database_url,
        storage_url=f"s3://{bucket}/objects",
        s3_endpoint_url=endpoint,
        broker_url=request.getfixturevalue("redis_url"),
        max_upload_bytes=8 * 1024 * 1024,
        max_line_bytes=64 * 1024,
    )


@pytest.fixture(scope="session", params=["sqlite", "postgres"])
def api(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path) -> Iterator[LiveAPI]:
    """The API over real HTTP: SQLite + file:// + filesystem broker, or PostgreSQL + S3 (moto) + Redis."""
    settings = _settings(request, tmp_path_factory.mktemp(f"home-{request.param}"))
    upgrade(settings.database_url)
    base_url, server, thread = _serve(settings)
    store = server.config.app.state.store
    if isinstance(store, S3ObjectStore):
        store.ensure_bucket()
    yield LiveAPI(request.param, base_url, settings, store, tiny_model)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def client(api: LiveAPI) -> openai.OpenAI:
    """An SDK client for a brand-new org."""
    return api.client()
