"""Object store: one small interface, two backends.

- ``file:///abs/dir`` or ``file://./rel/dir``: a local directory (the embedded default, ``file://./.ftaas/objects``).
- ``s3://bucket/prefix``: S3 or anything that speaks it (MinIO, moto) through boto3.

Keys are ``/``-separated paths relative to the store root (``files/file-abc.jsonl``). They are validated so a
key can never name something outside the root. ``list`` and ``delete_prefix`` use S3's plain string-prefix
semantics, so pass a trailing ``/`` to mean "this directory": ``delete_prefix("jobs/ftjob-1")`` would also
match ``jobs/ftjob-10/...``. ``upload_dir`` and ``download_dir`` always treat their prefix as a directory.

Writes are atomic: a reader sees the previous object or the new one, never a partial one. The streaming writer
holds at most one part (8 MiB) in memory on S3 and nothing on the local backend.
"""

from __future__ import annotations

from pathlib import Path

from service.storage.base import TMP_DIR as TMP_DIR
from service.storage.base import ObjectNotFound, ObjectStore, ObjectWriter, validate_key
from service.storage.local import LocalObjectStore
from service.storage.s3 import DEFAULT_PART_SIZE as DEFAULT_PART_SIZE
from service.storage.s3 import MIN_PART_SIZE as MIN_PART_SIZE
from service.storage.s3 import S3ObjectStore

__all__ = [
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectWriter",
    "S3ObjectStore",
    "open_store",
    "validate_key",
]


def open_store(
    url: str,
    *,
    endpoint_url: str | None = None,
    region: str = "us-east-1",
    max_attempts: int = 6,
    connect_timeout_s: float = 10.0,
) -> ObjectStore:
    """Open ``file://DIR`` (relative DIRs resolve against the current directory) or ``s3://bucket/prefix``."""
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path:
            raise ValueError(f"object store URL {url!r} names no directory")
        return LocalObjectStore(Path(path))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3ObjectStore(
            bucket,
            prefix,
            endpoint_url=endpoint_url,
            region=region,
            max_attempts=max_attempts,
            connect_timeout_s=connect_timeout_s,
        )
    raise ValueError(f"unsupported object store URL {url!r}: use file://DIR or s3://bucket/prefix")
