"""A live uvicorn server per backend (SQLite + file:// store, PostgreSQL + S3 store), driven over real HTTP."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import openai
import pytest

from service.config import Settings
from service.migrate import upgrade
from service.storage import S3ObjectStore, open_store
from tests.live import LiveAPI, serve
from worker.datasets.assets import tiny_model_dir


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tiny_model_dir(tmp_path_factory.mktemp("tiny-model"))


def _settings(request: pytest.FixtureRequest, home: Path) -> Settings:
    if request.param == "sqlite":
        return Settings(
            env="dev",
            home=home,
            broker_url="filesystem://", max_upload_bytes=8 * 1024 * 1024, max_line_bytes=64 * 1024
        )
    database_url = request.getfixturevalue("postgres_url")
    endpoint = request.getfixturevalue("s3_endpoint")
    bucket = f"ftaas-api-{uuid.uuid4().hex[:12]}"
    return Settings(
        env="dev",
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
    # The bucket exists before the app starts: its files janitor makes a pass at startup.
    bucket = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    if isinstance(bucket, S3ObjectStore):
        bucket.ensure_bucket()
    base_url, server, thread = serve(settings)
    store = server.config.app.state.store
    yield LiveAPI(request.param, base_url, settings, store, tiny_model)
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def client(api: LiveAPI) -> openai.OpenAI:
    """An SDK client for a brand-new org."""
    return api.client()


@pytest.fixture
def server(api: LiveAPI) -> Iterator[Callable[..., str]]:
    """Start more API servers on the same database, each with its own settings overrides; returns their /v1 URL."""
    started = []

    def start(**overrides: object) -> str:
        base_url, uvicorn_server, thread = serve(api.settings.model_copy(update=overrides))
        started.append((uvicorn_server, thread))
        return base_url + "/v1"

    yield start
    for uvicorn_server, thread in started:
        uvicorn_server.should_exit = True
        thread.join(10)


@pytest.fixture
def http(api: LiveAPI) -> Iterator[httpx.Client]:
    """Raw HTTP for a brand-new org, with the `tiny-aligned` base registered (bodies the SDK would refuse)."""
    api.register_base("tiny-aligned")
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {api.new_key()}"}, timeout=30) as c:
        yield c
