"""One part's body, streamed from the request into its own object as it arrives (never held whole)."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import Request
from python_multipart.multipart import parse_options_header
from starlette.concurrency import run_in_threadpool

from service.config import Settings
from service.errors import InvalidRequest, PayloadTooLarge
from service.files.multipart import MultipartStream, PartEnd, PartStart, boundary_of
from service.files.service import BATCH
from service.storage import ObjectStore, ObjectWriter

# Bytes of a part's body besides its data: the boundaries and the one part's headers.
_FORM_OVERHEAD = 64 * 1024


def part_key(upload_id: str, part_id: str) -> str:
    return f"uploads/{upload_id}/{part_id}"


def upload_prefix(upload_id: str) -> str:
    return f"uploads/{upload_id}/"


def check_declared_size(request: Request, limit: int) -> None:
    """Refuse a part whose Content-Length is already over the limit, before reading any of it."""
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit + _FORM_OVERHEAD:
        raise PayloadTooLarge(f"A part may hold at most {limit} bytes.", param="data")


def check_content_type(request: Request) -> bytes:
    ctype, _ = parse_options_header(request.headers.get("content-type", ""))
    if ctype != b"multipart/form-data":
        raise InvalidRequest(
            "Expected a multipart/form-data body with the part's bytes in a `data` field.",
            param="data",
            code="invalid_content_type",
        )
    return boundary_of(request.headers["content-type"])


class PartSink:
    """The `data` field of one part's form, written to ``key`` in batches off the event loop."""

    def __init__(self, store: ObjectStore, key: str, settings: Settings, limit: int) -> None:
        self.store, self.key, self.settings, self.limit = store, key, settings, limit
        self.writer: ObjectWriter | None = None
        self.size = 0
        self._current: str | None = None
        self._pending = bytearray()

    async def read(self, chunks: AsyncIterator[bytes], boundary: bytes) -> None:
        parts = MultipartStream(boundary, self.settings.max_part_header_bytes)
        async for chunk in chunks:
            for event in parts.feed(chunk):
                if isinstance(event, PartStart):
                    await self._start(event.name)
                elif isinstance(event, PartEnd):
                    self._current = None
                elif self._current == "data":
                    await self._data(event.data)
        parts.finish()
        if self.writer is None:
            raise InvalidRequest("Missing required field `data` (the part's bytes).", param="data",
                                 code="missing_required_parameter")  # fmt: skip
        await self._flush()

    async def _start(self, name: str) -> None:
        if name != "data":
            raise InvalidRequest(f"Unexpected form field `{name}`: a part's form has only `data`.", param=name)
        if self.writer is not None:
            raise InvalidRequest("Only one `data` field is allowed per part.", param="data")
        self._current = name
        self.writer = await run_in_threadpool(self.store.writer, self.key)

    async def _data(self, data: bytes) -> None:
        self._pending += data
        if self.size + len(self._pending) > self.limit:
            raise PayloadTooLarge(
                f"The part is larger than {self.limit} bytes (the per-part limit, or what is left of the upload's).",
                param="data",
            )
        if len(self._pending) >= BATCH:
            await self._flush()

    async def _flush(self) -> None:
        if self._pending and self.writer is not None:
            await run_in_threadpool(self.writer.write, bytes(self._pending))
            self.size += len(self._pending)
            self._pending.clear()

    async def commit(self) -> None:
        assert self.writer is not None
        await run_in_threadpool(self.writer.commit)

    async def abort(self) -> None:
        if self.writer is not None:
            await run_in_threadpool(self.writer.abort)
