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

import builtins  # the stores have a ``list`` method, which shadows the builtin in class scope
import contextlib
import os
import shutil
import stat
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Any, BinaryIO

__all__ = [
    "LocalObjectStore",
    "ObjectNotFound",
    "ObjectStore",
    "ObjectWriter",
    "S3ObjectStore",
    "open_store",
    "validate_key",
]

# Reserved first segment: in-flight uploads of the local backend live there, so no key may start with it.
TMP_DIR = ".tmp"
DEFAULT_PART_SIZE = 8 * 1024 * 1024
MIN_PART_SIZE = 5 * 1024 * 1024  # S3 rejects smaller multipart parts (except the last one)
_COPY_CHUNK = 1 << 20


class ObjectNotFound(KeyError):
    """The key names no object."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key

    def __str__(self) -> str:
        return f"object not found: {self.key!r}"


def validate_key(key: str) -> str:
    """Return ``key`` if it is a safe object key, else raise ValueError."""
    if not isinstance(key, str) or not key:
        raise ValueError(f"invalid object key {key!r}: must be a non-empty string")
    if key.startswith("/"):
        raise ValueError(f"invalid object key {key!r}: must not start with '/'")
    if "\\" in key or any(ord(c) < 0x20 or c == "\x7f" for c in key):
        raise ValueError(f"invalid object key {key!r}: backslashes and control characters are not allowed")
    segments = key.split("/")
    for segment in segments:
        if segment in ("", ".", ".."):
            raise ValueError(f"invalid object key {key!r}: empty, '.' and '..' segments are not allowed")
    if segments[0] == TMP_DIR:
        raise ValueError(f"invalid object key {key!r}: {TMP_DIR!r} is reserved")
    return key


def _validate_prefix(prefix: str) -> str:
    """A prefix is empty or a key, optionally with one trailing '/'."""
    if prefix == "":
        return prefix
    validate_key(prefix[:-1] if prefix.endswith("/") else prefix)
    return prefix


def _dir_prefix(prefix: str) -> str:
    """Turn a directory-like prefix into one that ends with '/' (or stays empty for the root)."""
    _validate_prefix(prefix)
    return prefix if prefix == "" or prefix.endswith("/") else prefix + "/"


class ObjectWriter(ABC):
    """Streaming upload of one object; nothing is visible at the key until ``commit()``.

    Use as a context manager: leaving the block without ``commit()``, or with an exception, aborts.
    """

    def __init__(self, key: str) -> None:
        self.key = key
        self.bytes_written = 0
        self._state = "open"  # open -> committed | aborted

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self._require_open()
        size = memoryview(data).nbytes
        if size:
            self._write(data)
            self.bytes_written += size

    def commit(self) -> int:
        """Publish the object atomically and return its size in bytes."""
        self._require_open()
        try:
            self._commit()
        except BaseException:
            self.abort()
            raise
        self._state = "committed"
        return self.bytes_written

    def abort(self) -> None:
        """Discard everything written; idempotent, and a no-op after commit."""
        if self._state != "open":
            return
        self._state = "aborted"
        self._abort()

    @property
    def committed(self) -> bool:
        return self._state == "committed"

    def __enter__(self) -> ObjectWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.abort()

    def _require_open(self) -> None:
        if self._state != "open":
            raise RuntimeError(f"writer for {self.key!r} is already {self._state}")

    @abstractmethod
    def _write(self, data: bytes | bytearray | memoryview) -> None: ...

    @abstractmethod
    def _commit(self) -> None: ...

    @abstractmethod
    def _abort(self) -> None: ...


class ObjectStore(ABC):
    """The object store interface. Keys are relative to the store root."""

    url: str

    @abstractmethod
    def writer(self, key: str) -> ObjectWriter: ...

    @abstractmethod
    def put_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def put_file(self, key: str, path: Path) -> None: ...

    @abstractmethod
    def get_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        """Open ``key`` now (ObjectNotFound is raised here, not on first ``next``) and stream its bytes."""

    @abstractmethod
    def download_file(self, key: str, path: Path) -> None:
        """Write the object to ``path`` atomically, creating parent directories."""

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def size(self, key: str) -> int: ...

    @abstractmethod
    def list(self, prefix: str) -> list[str]:
        """Sorted keys that start with ``prefix`` (string prefix, like S3)."""

    @abstractmethod
    def delete(self, key: str) -> None:
        """Delete ``key``; a missing key is not an error."""

    @abstractmethod
    def delete_prefix(self, prefix: str) -> int:
        """Delete every key that starts with ``prefix`` (non-empty) and return how many there were."""

    @abstractmethod
    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        """A URL that GETs the object without credentials, or None where the backend has none."""

    @abstractmethod
    def ensure_bucket(self) -> None:
        """Create the bucket (S3) or root directory (local) if missing."""

    def upload_dir(self, prefix: str, directory: Path) -> builtins.list[str]:
        """Upload every file under ``directory`` to ``prefix/<relative path>``; return the keys, sorted."""
        base = _dir_prefix(prefix)
        directory = Path(directory)
        if not directory.is_dir():
            raise NotADirectoryError(str(directory))
        keys = []
        for path in sorted(p for p in directory.rglob("*") if p.is_file()):
            key = validate_key(base + path.relative_to(directory).as_posix())
            self.put_file(key, path)
            keys.append(key)
        return keys

    def download_dir(self, prefix: str, directory: Path) -> builtins.list[Path]:
        """Download every object under the directory ``prefix`` into ``directory``; return the paths, sorted.

        Raises ObjectNotFound when nothing is stored under ``prefix``.
        """
        base = _dir_prefix(prefix)
        keys = self.list(base)
        if not keys:
            raise ObjectNotFound(base)
        directory = Path(directory)
        paths = []
        for key in keys:
            # Keys listed from a shared bucket may have been written by other tools: re-check before joining.
            path = directory.joinpath(*validate_key(key)[len(base) :].split("/"))
            self.download_file(key, path)
            paths.append(path)
        return paths

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.url!r})"


def _atomic_download(path: Path, fill: Any) -> None:
    """Create ``path`` via a temp file next to it, so a crash never leaves a truncated file behind."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as out:
            fill(out)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


# ----------------------------------------------------------------------------------------------------
# Local directory


class _LocalWriter(ObjectWriter):
    def __init__(self, store: LocalObjectStore, key: str) -> None:
        super().__init__(key)
        self._store = store
        self._tmp = store._new_tmp()
        self._file: BinaryIO = open(self._tmp, "wb", buffering=_COPY_CHUNK)

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        self._file.write(data)

    def _commit(self) -> None:
        self._file.flush()
        if self._store.fsync:
            os.fsync(self._file.fileno())
        self._file.close()
        self._store._publish(self._tmp, self.key)

    def _abort(self) -> None:
        self._file.close()
        with contextlib.suppress(OSError):
            os.unlink(self._tmp)


class LocalObjectStore(ObjectStore):
    """Objects are files under ``root``; uploads go to ``root/.tmp/`` and are renamed into place."""

    def __init__(self, root: Path, *, fsync: bool = False) -> None:
        self.root = Path(root).absolute()
        self.url = f"file://{self.root}"
        self.fsync = fsync

    def _path(self, key: str) -> Path:
        return self.root.joinpath(*validate_key(key).split("/"))

    def _new_tmp(self) -> Path:
        tmp_dir = self.root / TMP_DIR
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=tmp_dir, suffix=".part")
        os.fchmod(fd, 0o644)
        os.close(fd)
        return Path(name)

    def _publish(self, tmp: Path, key: str) -> None:
        dest = self._path(key)
        try:
            # A concurrent delete may prune the freshly created parent directory before the rename: retry.
            for attempt in range(5):
                dest.parent.mkdir(parents=True, exist_ok=True)
                try:
                    os.replace(tmp, dest)
                    return
                except FileNotFoundError:
                    if attempt == 4 or not tmp.exists():
                        raise
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def _prune_empty_parents(self, path: Path) -> None:
        parent = path.parent
        while parent != self.root and self.root in parent.parents:
            try:
                parent.rmdir()
            except OSError:
                return
            parent = parent.parent

    def _open_existing(self, key: str) -> BinaryIO:
        path = self._path(key)
        try:
            return open(path, "rb")
        except (FileNotFoundError, IsADirectoryError, NotADirectoryError):
            raise ObjectNotFound(key) from None

    def writer(self, key: str) -> ObjectWriter:
        validate_key(key)
        return _LocalWriter(self, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        with self.writer(key) as w:
            w.write(data)
            w.commit()

    def put_file(self, key: str, path: Path) -> None:
        validate_key(key)
        tmp = self._new_tmp()
        try:
            shutil.copyfile(path, tmp)  # sendfile/copy_file_range: no userspace copy
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._publish(tmp, key)

    def get_bytes(self, key: str) -> bytes:
        with self._open_existing(key) as f:
            return f.read()

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        f = self._open_existing(key)

        def chunks() -> Iterator[bytes]:
            with f:
                while chunk := f.read(chunk_size):
                    yield chunk

        return chunks()

    def download_file(self, key: str, path: Path) -> None:
        with self._open_existing(key) as src:
            _atomic_download(path, lambda out: shutil.copyfileobj(src, out, _COPY_CHUNK))

    def exists(self, key: str) -> bool:
        return self._path(key).is_file()

    def size(self, key: str) -> int:
        try:
            st = self._path(key).stat()
        except (FileNotFoundError, NotADirectoryError):
            raise ObjectNotFound(key) from None
        if not stat.S_ISREG(st.st_mode):
            raise ObjectNotFound(key)
        return st.st_size

    def list(self, prefix: str) -> list[str]:
        _validate_prefix(prefix)
        start_rel = prefix.rpartition("/")[0]
        start = self.root.joinpath(*start_rel.split("/")) if start_rel else self.root
        keys: list[str] = []
        for dirpath, dirnames, filenames in os.walk(start):
            rel = Path(dirpath).relative_to(self.root).as_posix()
            rel = "" if rel == "." else rel + "/"
            # Descend only where keys can still match the prefix (and never into the upload area).
            dirnames[:] = [
                d
                for d in dirnames
                if (rel or d != TMP_DIR)
                and ((rel + d + "/").startswith(prefix) or prefix.startswith(rel + d + "/"))
            ]
            keys.extend(rel + name for name in filenames if (rel + name).startswith(prefix))
        return sorted(keys)

    def delete(self, key: str) -> None:
        path = self._path(key)
        try:
            path.unlink()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return
        self._prune_empty_parents(path)

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole store: prefix must not be empty")
        keys = self.list(prefix)
        for key in keys:
            self.delete(key)
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        validate_key(key)
        return None

    def ensure_bucket(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)


# ----------------------------------------------------------------------------------------------------
# S3


def _error_code(exc: Exception) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


def _is_not_found(exc: Exception) -> bool:
    return _error_code(exc) in ("404", "NoSuchKey", "NotFound")


class _S3Writer(ObjectWriter):
    """Buffers exactly one part; the first full part turns the upload into a multipart upload."""

    def __init__(self, store: S3ObjectStore, key: str) -> None:
        super().__init__(key)
        self._store = store
        self._full_key = store._full_key(key)
        self._buf = bytearray()
        self._upload_id: str | None = None
        self._parts: list[dict[str, Any]] = []

    def _write(self, data: bytes | bytearray | memoryview) -> None:
        part_size = self._store.part_size
        view = memoryview(data).cast("B")
        while view:
            room = part_size - len(self._buf)
            self._buf += view[:room]
            view = view[room:]
            if len(self._buf) == part_size:
                self._upload_part()

    def _upload_part(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            self._upload_id = client.create_multipart_upload(Bucket=bucket, Key=self._full_key)["UploadId"]
        number = len(self._parts) + 1
        response = client.upload_part(
            Bucket=bucket, Key=self._full_key, UploadId=self._upload_id, PartNumber=number, Body=self._buf
        )
        self._parts.append({"PartNumber": number, "ETag": response["ETag"]})
        self._buf = bytearray()

    def _commit(self) -> None:
        client, bucket = self._store.client, self._store.bucket
        if self._upload_id is None:
            client.put_object(Bucket=bucket, Key=self._full_key, Body=self._buf)
        else:
            if self._buf:
                self._upload_part()
            client.complete_multipart_upload(
                Bucket=bucket,
                Key=self._full_key,
                UploadId=self._upload_id,
                MultipartUpload={"Parts": self._parts},
            )
        self._buf = bytearray()

    def _abort(self) -> None:
        self._buf = bytearray()
        if self._upload_id is not None:
            self._store.client.abort_multipart_upload(
                Bucket=self._store.bucket, Key=self._full_key, UploadId=self._upload_id
            )


class S3ObjectStore(ObjectStore):
    """Objects live in ``bucket`` under ``prefix/``; boto3 does the talking."""

    def __init__(
        self,
        bucket: str,
        prefix: str = "",
        *,
        endpoint_url: str | None = None,
        region: str = "us-east-1",
        part_size: int = DEFAULT_PART_SIZE,
        client: Any = None,
    ) -> None:
        if not bucket:
            raise ValueError("S3 object store needs a bucket: s3://bucket/prefix")
        if part_size < MIN_PART_SIZE:
            raise ValueError(f"part_size must be at least {MIN_PART_SIZE} bytes (the S3 minimum)")
        prefix = prefix.strip("/")
        if prefix:
            validate_key(prefix)
        self.bucket = bucket
        self.root = prefix + "/" if prefix else ""
        self.url = f"s3://{bucket}/{prefix}" if prefix else f"s3://{bucket}"
        self.endpoint_url = endpoint_url
        self.region = region
        self.part_size = part_size
        self.client = client if client is not None else self._make_client(endpoint_url, region)

    @staticmethod
    def _make_client(endpoint_url: str | None, region: str) -> Any:
        import boto3
        from botocore.config import Config

        config = Config(
            region_name=region,
            signature_version="s3v4",
            retries={"max_attempts": 5, "mode": "standard"},
            max_pool_connections=32,
            # MinIO/moto behind a host:port have no per-bucket DNS names.
            s3={"addressing_style": "path"} if endpoint_url else {},
            # botocore >= 1.36 adds CRC checksums to every upload by default; several S3-compatible servers
            # reject them, and TLS already protects the bytes in flight.
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
        )
        return boto3.session.Session().client("s3", endpoint_url=endpoint_url, config=config)

    def _full_key(self, key: str) -> str:
        return self.root + validate_key(key)

    def _transfer_config(self) -> Any:
        from boto3.s3.transfer import TransferConfig

        return TransferConfig(
            multipart_threshold=self.part_size, multipart_chunksize=self.part_size, max_concurrency=8
        )

    def _get_object(self, key: str) -> dict[str, Any]:
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self.client.get_object(Bucket=self.bucket, Key=self._full_key(key))
            return response
        except ClientError as e:
            if _is_not_found(e):
                raise ObjectNotFound(key) from None
            raise

    def _head(self, key: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        try:
            response: dict[str, Any] = self.client.head_object(Bucket=self.bucket, Key=self._full_key(key))
            return response
        except ClientError as e:
            if _is_not_found(e):
                return None
            raise

    def writer(self, key: str) -> ObjectWriter:
        validate_key(key)
        return _S3Writer(self, key)

    def put_bytes(self, key: str, data: bytes) -> None:
        self.client.put_object(Bucket=self.bucket, Key=self._full_key(key), Body=data)

    def put_file(self, key: str, path: Path) -> None:
        full_key = self._full_key(key)
        self.client.upload_file(str(path), self.bucket, full_key, Config=self._transfer_config())

    def get_bytes(self, key: str) -> bytes:
        body = self._get_object(key)["Body"]
        with body:
            data: bytes = body.read()
        return data

    def iter_chunks(self, key: str, chunk_size: int = 1 << 20) -> Iterator[bytes]:
        body = self._get_object(key)["Body"]

        def chunks() -> Iterator[bytes]:
            with body:
                yield from body.iter_chunks(chunk_size)

        return chunks()

    def download_file(self, key: str, path: Path) -> None:
        from botocore.exceptions import ClientError

        full_key = self._full_key(key)
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            # s3transfer downloads to a temp name next to ``path`` and renames it at the end.
            self.client.download_file(self.bucket, full_key, str(path), Config=self._transfer_config())
        except ClientError as e:
            if _is_not_found(e):
                raise ObjectNotFound(key) from None
            raise

    def exists(self, key: str) -> bool:
        return self._head(key) is not None

    def size(self, key: str) -> int:
        head = self._head(key)
        if head is None:
            raise ObjectNotFound(key)
        return int(head["ContentLength"])

    def list(self, prefix: str) -> list[str]:
        _validate_prefix(prefix)
        paginator = self.client.get_paginator("list_objects_v2")
        keys: list[str] = []
        for page in paginator.paginate(Bucket=self.bucket, Prefix=self.root + prefix):
            keys.extend(obj["Key"][len(self.root) :] for obj in page.get("Contents", ()))
        return sorted(keys)

    def delete(self, key: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._full_key(key))

    def delete_prefix(self, prefix: str) -> int:
        if not prefix:
            raise ValueError("refusing to delete the whole store: prefix must not be empty")
        keys = self.list(prefix)
        for start in range(0, len(keys), 1000):  # DeleteObjects takes at most 1000 keys
            batch = [{"Key": self.root + k} for k in keys[start : start + 1000]]
            response = self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True}
            )
            if response.get("Errors"):
                first = response["Errors"][0]
                raise OSError(f"S3 delete failed for {len(response['Errors'])} keys, first: {first}")
        return len(keys)

    def presigned_url(self, key: str, expires_s: int = 3600) -> str | None:
        url: str = self.client.generate_presigned_url(
            "get_object", Params={"Bucket": self.bucket, "Key": self._full_key(key)}, ExpiresIn=expires_s
        )
        return url

    def ensure_bucket(self) -> None:
        from botocore.exceptions import ClientError

        try:
            self.client.head_bucket(Bucket=self.bucket)
            return
        except ClientError as e:
            if _error_code(e) not in ("404", "NoSuchBucket", "NotFound"):
                raise
        kwargs: dict[str, Any] = {"Bucket": self.bucket}
        if self.region != "us-east-1":  # us-east-1 rejects an explicit LocationConstraint
            kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
        try:
            self.client.create_bucket(**kwargs)
        except ClientError as e:
            if _error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                raise


def open_store(url: str, *, endpoint_url: str | None = None, region: str = "us-east-1") -> ObjectStore:
    """Open ``file://DIR`` (relative DIRs resolve against the current directory) or ``s3://bucket/prefix``."""
    if url.startswith("file://"):
        path = url[len("file://") :]
        if not path:
            raise ValueError(f"object store URL {url!r} names no directory")
        return LocalObjectStore(Path(path))
    if url.startswith("s3://"):
        bucket, _, prefix = url[len("s3://") :].partition("/")
        return S3ObjectStore(bucket, prefix, endpoint_url=endpoint_url, region=region)
    raise ValueError(f"unsupported object store URL {url!r}: use file://DIR or s3://bucket/prefix")
