"""A live uvicorn server per backend (SQLite + file:// store, PostgreSQL + S3 store), driven over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from service.config import Settings
from service.migrate import upgrade
from service.storage import S3ObjectStore
from tests.live import LiveAPI, serve
from worker.assets import tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


def _settings(request: pytest.FixtureRequest, home: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(
            home=home, broker_url="filesystem://", max_upload_bytes=8 * 1024 * 1024, max_line_bytes=64 * 1024
        )
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
def api(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory, tiny_model: Path
) -> Iterator[LiveAPI]:
    """The API over real HTTP: SQLite + file:// + filesystem broker, or PostgreSQL + S3 (moto) + Redis."""
    settings = _settings(request, tmp_path_factory.mktemp(f"home-{request.param}"))
    upgrade(settings.database_url)
    base_url, server, thread = serve(settings)
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
