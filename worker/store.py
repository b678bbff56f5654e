"""The worker process's object store: one store (and boto3 client) per process, not one per task."""

from __future__ import annotations

from functools import lru_cache

from service.config import Settings
from service.storage import ObjectStore, open_store


@lru_cache
def _store(url: str, endpoint_url: str | None, region: str) -> ObjectStore:
    return open_store(url, endpoint_url=endpoint_url, region=region)


def store_for(settings: Settings) -> ObjectStore:
    return _store(settings.storage_url, settings.s3_endpoint_url, settings.s3_region)
