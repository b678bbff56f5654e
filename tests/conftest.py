"""Session-wide real servers (started on first use) and the object store fixture.

Subdirectories add their own conftest.py; keep this one to shared infrastructure.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from service.storage import ObjectStore, S3ObjectStore, open_store
from tests import servers

# Jobs in tests train on their own files only, so the steps, checkpoints and tokens a test counts are the ones its
# file implies, and no worker process pays seconds to build the provider's refusal set. The provider default
# (a 0.1 share, worker/datasets/safety_mix.py) runs in tests/worker/fine_tuning/test_runner.py's end-to-end job.
os.environ.setdefault("FTAAS_SAFETY_MIX_SHARE", "0")
# The provider's default safety gate is calibrated on the aligned SmolLM2 (bench/safety.py --gate). The tiny random
# models of most tests answer every harmful prompt with noise (HS near 100), so it would stop every job there;
# tests/worker/fine_tuning/test_runner.py and test_evaluation.py turn it on where they test it.
os.environ.setdefault("FTAAS_SAFETY_MAX_HS", "none")
os.environ.setdefault("FTAAS_SAFETY_MAX_HS_INCREASE", "none")


def _start(start: Callable[[], str]) -> str:
    try:
        return start()
    except servers.ServerUnavailable as e:
        pytest.fail(str(e), pytrace=False)


@pytest.fixture(scope="session", autouse=True)
def _stop_test_servers() -> Iterator[None]:
    yield
    servers.stop_all()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """``redis://127.0.0.1:PORT/0`` of a real redis-server (or ``FTAAS_TEST_REDIS_URL``)."""
    return _start(servers.start_redis)


@pytest.fixture(scope="session")
def postgres_url() -> str:
    """``postgresql+psycopg://…`` of an empty database on real PostgreSQL (or ``FTAAS_TEST_DATABASE_URL``)."""
    return _start(servers.start_postgres)


@pytest.fixture(scope="session")
def s3_endpoint() -> str:
    """Endpoint URL of a real S3-speaking server (moto, or ``FTAAS_TEST_S3_ENDPOINT``); AWS_* env creds."""
    # moto accepts any credentials, but boto3 refuses to sign without some.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    return _start(servers.start_moto)


@pytest.fixture(params=["file", "s3"])
def object_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[ObjectStore]:
    """An empty store: a ``file://`` directory, or a fresh bucket (with a root prefix) on the S3 server."""
    if request.param == "file":
        yield open_store(f"file://{tmp_path / 'objects'}")
        return
    endpoint = request.getfixturevalue("s3_endpoint")
    store = open_store(f"s3://ftaas-test-{uuid.uuid4().hex[:16]}/root", endpoint_url=endpoint)
    assert isinstance(store, S3ObjectStore)
    store.ensure_bucket()
    yield store
    _drop_bucket(store)


def _drop_bucket(store: S3ObjectStore) -> None:
    client, bucket = store.client, store.bucket
    for upload in client.list_multipart_uploads(Bucket=bucket).get("Uploads", ()):
        client.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for obj in page.get("Contents", ()):
            client.delete_object(Bucket=bucket, Key=obj["Key"])
    client.delete_bucket(Bucket=bucket)
