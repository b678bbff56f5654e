"""Files: streaming upload with inline validation, listing, content and deletion."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Iterator
from functools import partial

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth.service import Principal
from service.config import Settings
from service.db import after_commit
from service.errors import InvalidRequest, NotFound, PayloadTooLarge
from service.files import repository
from service.files.multipart import Event, FormFields, MultipartStream, PartEnd, PartStart, boundary_of
from service.files.validation import ChatJSONLValidator, ValidationResult
from service.ids import new_id, now
from service.orm import FileRow
from service.quotas import service as quotas
from service.storage import ObjectStore, ObjectWriter

UPLOAD_PURPOSES = ("fine-tune",)
# Bytes handed to a worker thread at a time: big enough that thread hops cost nothing, small enough to stay lean.
BATCH = 1 << 20
# FileRow.filename is a String(512): PostgreSQL refuses longer values (SQLite stores them), so check it up front.
MAX_FILENAME_CHARS = 512
# ASCII digits only: int() and str.isdigit() each accept some other scripts' digits ('³', '٣'), not the same ones.
_SECONDS = re.compile(r"[0-9]{1,8}")


class InvalidFile(InvalidRequest):
    code = "invalid_file_format"


def object_key(file_id: str) -> str:
    return f"files/{file_id}.jsonl"


class _FileSink:
    """Validates and stores one file part as it streams in (runs in worker threads; never holds the file)."""

    def __init__(self, store: ObjectStore, key: str, settings: Settings) -> None:
        self.validator = ChatJSONLValidator(
            max_line_bytes=settings.max_line_bytes, min_examples=settings.min_examples
        )
        self.writer: ObjectWriter = store.writer(key)
        self.size = 0

    def write(self, data: bytes) -> None:
        self.validator.feed(data)
        self.writer.write(data)
        self.size += len(data)

    def finish(self) -> ValidationResult:
        result = self.validator.finish()
        if result.ok:
            self.writer.commit()
        else:
            self.writer.abort()
        return result

    def abort(self) -> None:
        self.writer.abort()


def _check_purpose(fields: FormFields) -> str:
    purpose = fields.text("purpose")
    if purpose is None:
        raise InvalidRequest(
            "Missing required form field `purpose`.", param="purpose", code="missing_required_parameter"
        )
    purpose = purpose.strip()
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"Invalid purpose '{purpose}': this service accepts only 'fine-tune' uploads.",
            param="purpose",
            code="invalid_value",
        )
    return purpose


def _expires_at(fields: FormFields) -> int | None:
    anchor = fields.text("expires_after[anchor]")
    seconds = fields.text("expires_after[seconds]")
    if anchor is None and seconds is None:
        return None
    if (
        anchor not in (None, "created_at")
        or seconds is None
        or not _SECONDS.fullmatch(seconds)
        or not 3600 <= int(seconds) <= 2592000
    ):
        raise InvalidRequest(
            "expires_after needs anchor 'created_at' and seconds between 3600 and 2592000 (ASCII digits).",
            param="expires_after",
            code="invalid_value",
        )
    return now() + int(seconds)


def _check_filename(filename: str | None) -> str:
    if not filename:
        raise InvalidRequest("`file` must be a file part with a filename.", param="file")
    if len(filename) > MAX_FILENAME_CHARS:
        raise InvalidRequest(
            f"The filename has {len(filename)} characters; at most {MAX_FILENAME_CHARS} are allowed.",
            param="file",
            code="invalid_filename",
        )
    if any(ord(c) < 0x20 or c == "\x7f" for c in filename):
        raise InvalidRequest(
            "The filename must not contain NUL or other control characters.", param="file", code="invalid_filename"
        )
    return filename


def _body_overhead(settings: Settings) -> int:
    """The most bytes a valid body holds besides the file's: every field and every part's headers and boundary."""
    return (settings.max_form_fields + 1) * (settings.max_form_field_bytes + settings.max_part_header_bytes + 256)


class _UploadForm:
    """One upload's parts as they arrive: fields into bounded memory, the `file` part straight into a _FileSink."""

    def __init__(
        self, store: ObjectStore, key: str, settings: Settings, reserve: Callable[[int], None] | None = None
    ) -> None:
        self.store, self.key, self.settings = store, key, settings
        self.reserve = reserve  # counts the file's bytes against the org's daily quota as they arrive
        self.fields = FormFields(settings.max_form_fields, settings.max_form_field_bytes)
        self.sink: _FileSink | None = None
        self.filename = ""
        self._current: str | None = None
        self._pending = bytearray()

    async def read(self, chunks: AsyncIterator[bytes], parts: MultipartStream) -> None:
        async for chunk in chunks:
            for event in parts.feed(chunk):
                await self._on(event)
        parts.finish()

    async def _on(self, event: Event) -> None:
        if isinstance(event, PartStart):
            await self._start(event)
        elif isinstance(event, PartEnd):
            if self._current == "purpose":
                _check_purpose(self.fields)  # a wrong purpose sent first stops the upload before the file
            self._current = None
        elif self._current == "file":
            await self._file_data(event.data)
        elif self._current is not None:
            self.fields.add(self._current, event.data)

    async def _start(self, event: PartStart) -> None:
        self._current = event.name
        if event.name != "file":
            self.fields.start(event.name)
            return
        if self.sink is not None:
            raise InvalidRequest("Only one `file` part is allowed.", param="file")
        self.filename = _check_filename(event.filename)
        self.sink = await run_in_threadpool(_FileSink, self.store, self.key, self.settings)

    async def _file_data(self, data: bytes) -> None:
        assert self.sink is not None
        self._pending += data
        limit = self.settings.max_upload_bytes
        if self.sink.size + len(self._pending) > limit:
            raise PayloadTooLarge(f"File exceeds the maximum upload size of {limit} bytes.", param="file")
        if len(self._pending) >= BATCH:
            await self.flush()

    async def flush(self) -> None:
        if self._pending and self.sink is not None:
            if self.reserve is not None:
                await run_in_threadpool(self.reserve, len(self._pending))
            await run_in_threadpool(self.sink.write, bytes(self._pending))
            self._pending.clear()

    async def abort(self) -> None:
        if self.sink is not None:
            await run_in_threadpool(self.sink.abort)


async def upload(
    request: Request, session: Session, store: ObjectStore, settings: Settings, principal: Principal
) -> tuple[FileRow, ValidationResult]:
    """Parse the multipart body incrementally, validating and storing the file part; nothing is kept on error."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isascii() and declared.isdigit() and int(declared) > limit + _body_overhead(settings):
        raise PayloadTooLarge(f"File exceeds the maximum upload size of {limit} bytes.", param="file")
    reserve = partial(quotas.reserve_upload_bytes, session, settings, principal.org_id, param="file")
    sized = declared.isascii() and declared.isdigit()
    if sized:  # the body's declared size bounds the file's: the quota is checked before anything is read
        await run_in_threadpool(reserve, int(declared))
    file_id = new_id("file-")
    form = _UploadForm(store, object_key(file_id), settings, None if sized else reserve)
    try:
        await form.read(request.stream(), MultipartStream(boundary, settings.max_part_header_bytes))
        purpose = _check_purpose(form.fields)
        if form.sink is None:
            raise InvalidRequest(
                "Missing required file part `file`.", param="file", code="missing_required_parameter"
            )
        expires_at = _expires_at(form.fields)
        await form.flush()
        sink = form.sink
        result = await run_in_threadpool(sink.finish)
    except BaseException:
        await form.abort()
        raise
    row = FileRow(
        id=file_id,
        org_id=principal.org_id,
        filename=form.filename,
        purpose=purpose,
        bytes=sink.size,
        status="processed" if result.ok else "error",
        status_details=None if result.ok else result.summary(),
        examples=result.examples if result.ok else None,
        object_key=object_key(file_id) if result.ok else None,
        created_at=now(),
        expires_at=expires_at,
    )
    await run_in_threadpool(repository.add, session, row)
    return row, result


def invalid_file_error(row: FileRow) -> InvalidFile:
    return InvalidFile(f"{row.status_details} (file {row.id} was recorded with status 'error')", param="file")


def get(session: Session, principal: Principal, file_id: str, *, include_expired: bool = False) -> FileRow:
    row = repository.get(session, principal.org_id, file_id, include_expired=include_expired)
    if row is None:
        raise NotFound(f"No such File object: {file_id}", param="id")
    return row


def list_files(
    session: Session, principal: Principal, *, after: str | None, limit: int, order: str, purpose: str | None
) -> tuple[list[FileRow], bool]:
    return repository.list_page(
        session, principal.org_id, after=after, limit=limit, newest_first=order == "desc", purpose=purpose
    )


def content(session: Session, store: ObjectStore, principal: Principal, file_id: str) -> Iterator[bytes]:
    row = get(session, principal, file_id)
    if row.object_key is None:
        raise InvalidRequest(
            f"File {file_id} has no content: {row.status_details}", param="id", code="file_not_ready"
        )
    return store.iter_chunks(row.object_key)


def delete(session: Session, store: ObjectStore, principal: Principal, file_id: str) -> str:
    # An expired file the janitor has not purged yet is still the owner's to delete (it frees the bytes now).
    row = get(session, principal, file_id, include_expired=True)
    repository.remove(session, row)
    if row.object_key:
        key = row.object_key
        # Bytes go only once the row's deletion has committed, so a failed request never orphans a live row.
        after_commit(session, lambda: store.delete(key))
    return file_id
