"""The trained adapter as a streamed tar.gz (server-sent events live in `event_stream`)."""

from __future__ import annotations

import io
import tarfile
import time
from collections.abc import Iterator

from service.storage import ObjectStore


class _Sink(io.RawIOBase):
    """A write-only file whose bytes are drained by the generator after each tar member."""

    def __init__(self) -> None:
        self.buffer = bytearray()

    def writable(self) -> bool:
        return True

    def write(self, data) -> int:  # type: ignore[no-untyped-def, override]
        self.buffer += data
        return len(data)

    def drain(self) -> bytes:
        out, self.buffer = bytes(self.buffer), bytearray()
        return out


def adapter_tarball(store: ObjectStore, keys: list[str], root: str) -> Iterator[bytes]:
    """Stream `keys` as `adapter/<relative path>` members of a gzip tarball without buffering the whole file."""
    sink = _Sink()
    with tarfile.open(fileobj=sink, mode="w|gz") as tar:
        for key in keys:
            info = tarfile.TarInfo("adapter/" + key.removeprefix(root))
            info.size = store.size(key)
            info.mtime = int(time.time())
            tar.addfile(info, _ChunkReader(store.iter_chunks(key)))
            yield sink.drain()
    yield sink.drain()


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]) -> None:
        self.chunks, self.pending = chunks, b""

    def readable(self) -> bool:
        return True

    def read(self, n: int = -1) -> bytes:
        while n < 0 or len(self.pending) < n:
            chunk = next(self.chunks, None)
            if chunk is None:
                break
            self.pending += chunk
        out, self.pending = (self.pending, b"") if n < 0 else (self.pending[:n], self.pending[n:])
        return out

