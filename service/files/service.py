"""Files: streaming upload with inline validation, listing, content and deletion."""

from __future__ import annotations

from collections.abc import Iterator

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth.service import Principal
from service.config import Settings
from service.db import after_commit
from service.errors import InvalidRequest, NotFound, PayloadTooLarge
from service.files import repository
from service.files.multipart import MultipartStream, PartData, PartEnd, PartStart, boundary_of
from service.files.validation import ChatJSONLValidator, ValidationResult
from service.ids import new_id, now
from service.orm import FileRow
from service.storage import ObjectStore, ObjectWriter

UPLOAD_PURPOSES = ("fine-tune",)
FIELD_LIMIT = 64 * 1024
# Bytes handed to a worker thread at a time: big enough that thread hops cost nothing, small enough to stay lean.
BATCH = 1 << 20
MULTIPART_SLACK = 64 * 1024


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


def _check_purpose(raw: bytes) -> str:
    purpose = raw.decode("utf-8", "replace").strip()
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(
            f"Invalid purpose '{purpose}': this service accepts only 'fine-tune' uploads.",
            param="purpose",
            code="invalid_value",
        )
    return purpose


def _expires_at(fields: dict[str, bytearray]) -> int | None:
    if "expires_after[seconds]" not in fields:
        return None
    anchor = fields.get("expires_after[anchor]", bytearray(b"created_at")).decode()
    raw = fields["expires_after[seconds]"].decode()
    if anchor != "created_at" or not raw.isdigit() or not 3600 <= int(raw) <= 2592000:
        raise InvalidRequest(
            "expires_after needs anchor 'created_at' and seconds between 3600 and 2592000.",
            param="expires_after",
            code="invalid_value",
        )
    return now() + int(raw)


async def upload(
    request: Request, session: Session, store: ObjectStore, settings: Settings, principal: Principal
) -> tuple[FileRow, ValidationResult]:
    """Parse the multipart body incrementally, validating and storing the file part; nothing is kept on error."""
    boundary = boundary_of(request.headers.get("content-type", ""))
    limit = settings.max_upload_bytes
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit + MULTIPART_SLACK:
        raise PayloadTooLarge(f"File exceeds the maximum upload size of {limit} bytes.", param="file")
    file_id = new_id("file-")
    parts = MultipartStream(boundary)
    fields: dict[str, bytearray] = {}
    sink: _FileSink | None = None
    filename = ""
    current: str | None = None
    pending = bytearray()
    try:
        async for chunk in request.stream():
            for event in parts.feed(chunk):
                if isinstance(event, PartStart):
                    current = event.name
                    if current == "file":
                        if sink is not None:
                            raise InvalidRequest("Only one `file` part is allowed.", param="file")
                        if not event.filename:
                            raise InvalidRequest("`file` must be a file part with a filename.", param="file")
                        filename = event.filename
                        sink = await run_in_threadpool(_FileSink, store, object_key(file_id), settings)
                    else:
                        fields[current] = bytearray()
                elif isinstance(event, PartData) and current == "file" and sink is not None:
                    pending += event.data
                    if sink.size + len(pending) > limit:
                        raise PayloadTooLarge(
                            f"File exceeds the maximum upload size of {limit} bytes.", param="file"
                        )
                    if len(pending) >= BATCH:
                        await run_in_threadpool(sink.write, bytes(pending))
                        pending.clear()
                elif isinstance(event, PartData) and current is not None:
                    fields[current] += event.data
                    if len(fields[current]) > FIELD_LIMIT:
                        raise InvalidRequest(f"Form field `{current}` is too long.", param=current)
                elif isinstance(event, PartEnd):
                    if current == "purpose":
                        _check_purpose(fields["purpose"])
                    current = None
        parts.finish()
        if "purpose" not in fields:
            raise InvalidRequest(
                "Missing required form field `purpose`.", param="purpose", code="missing_required_parameter"
            )
        purpose = _check_purpose(fields["purpose"])
        if sink is None:
            raise InvalidRequest(
                "Missing required file part `file`.", param="file", code="missing_required_parameter"
            )
        expires_at = _expires_at(fields)
        if pending:
            await run_in_threadpool(sink.write, bytes(pending))
        result = await run_in_threadpool(sink.finish)
    except BaseException:
        if sink is not None:
            await run_in_threadpool(sink.abort)
        raise
    row = FileRow(
        id=file_id,
        org_id=principal.org_id,
        filename=filename,
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


def get(session: Session, principal: Principal, file_id: str) -> FileRow:
    row = repository.get(session, principal.org_id, file_id)
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
    row = get(session, principal, file_id)
    repository.remove(session, row)
    if row.object_key:
        key = row.object_key
        # Bytes go only once the row's deletion has committed, so a failed request never orphans a live row.
        after_commit(session, lambda: store.delete(key))
    return file_id
