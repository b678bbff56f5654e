"""The object store interface, its streaming writer, and the key rules every backend shares."""

from __future__ import annotations

import builtins  # the stores have a ``list`` method, which shadows the builtin in class scope
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

# Reserved first segment: in-flight uploads of the local backend live there, so no key may start with it.
TMP_DIR = ".tmp"


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
    def list_modified(self, prefix: str) -> builtins.list[tuple[str, float]]:
        """Like ``list``, with each key's last-modified time (epoch seconds)."""

    @abstractmethod
    def abort_stale_uploads(self, before: float) -> int:
        """Discard uploads that a dead process never finished, idle since before ``before`` (epoch seconds).

        Local temp parts, or S3 incomplete multipart uploads; returns how many. Only uploads without any
        activity since ``before`` go, so pass a cutoff well behind the slowest upload still in flight.
        """

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
