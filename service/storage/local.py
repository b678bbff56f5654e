"""The ``file://`` backend: objects are files under a root directory."""

from __future__ import annotations

import builtins  # ``list`` is a method here, which shadows the builtin in class scope
import contextlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from service.storage.base import (
    TMP_DIR,
    ObjectNotFound,
    ObjectStore,
    ObjectWriter,
    _validate_prefix,
    validate_key,
)

_COPY_CHUNK = 1 << 20


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

    def list_modified(self, prefix: str) -> builtins.list[tuple[str, float]]:
        listed = []
        for key in self.list(prefix):
            try:
                listed.append((key, self._path(key).stat().st_mtime))
            except FileNotFoundError:  # deleted since the walk
                continue
        return listed

    def abort_stale_uploads(self, before: float) -> int:
        # A writer's buffer reaches its part at least every 1 MiB it is fed, so the mtime tells a live upload from
        # one whose process died (SIGKILL never runs the writer's abort).
        removed = 0
        with contextlib.suppress(FileNotFoundError), os.scandir(self.root / TMP_DIR) as entries:
            for entry in entries:
                with contextlib.suppress(FileNotFoundError):
                    if entry.is_file(follow_symlinks=False) and entry.stat().st_mtime < before:
                        os.unlink(entry.path)
                        removed += 1
        return removed

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
