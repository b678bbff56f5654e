"""Uploads: a large file sent in parts, each stored as it arrives, joined and validated into a `file-…` on complete.

The parts are objects under `uploads/<upload id>/`; `complete` streams them in the order given through the same
validator as `POST /v1/files`, an md5 and one streaming writer (S3: a native multipart upload), so the result is
an ordinary file. Every way an upload ends (completed, cancelled, refused, expired) deletes its parts' rows in the
same transaction and their bytes after the commit; what a crash leaves there is the janitor's (`janitor.py`).
"""

from __future__ import annotations

import hashlib
from functools import partial

from fastapi import Request
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from service.auth.service import Principal
from service.config import Settings
from service.db import after_commit
from service.errors import AppError, InvalidRequest, NotFound, PayloadTooLarge
from service.files import repository as files_repository
from service.files.service import InvalidFile, object_key
from service.files.validation import ChatJSONLValidator, ValidationResult
from service.ids import new_id, now
from service.orm import FileRow, UploadPartRow, UploadRow
from service.quotas import service as quotas
from service.storage import ObjectStore, ObjectWriter
from service.uploads import repository
from service.uploads.parts import PartSink, check_content_type, check_declared_size, part_key, upload_prefix
from service.uploads.schemas import MIME_TYPES, UploadComplete, UploadCreate, shown_status


def create(session: Session, settings: Settings, principal: Principal, body: UploadCreate) -> UploadRow:
    if body.bytes > settings.upload_max_bytes:
        raise InvalidRequest(
            f"An upload may hold at most {settings.upload_max_bytes} bytes; `bytes` is {body.bytes}.",
            param="bytes",
            code="invalid_value",
        )
    mime_type = body.mime_type.split(";", 1)[0].strip().lower()
    if mime_type not in MIME_TYPES:
        raise InvalidRequest(
            f"Unsupported mime_type '{body.mime_type}' for purpose 'fine-tune': use 'text/jsonl'.",
            param="mime_type",
            code="invalid_value",
        )
    quotas.reserve_upload_bytes(session, settings, principal.org_id, body.bytes, "bytes")  # the declared size
    created = now()
    row = UploadRow(
        id=new_id("upload_"),
        org_id=principal.org_id,
        filename=body.filename,
        purpose=body.purpose,
        bytes=body.bytes,
        mime_type=mime_type,
        status="pending",
        created_at=created,
        expires_at=created + settings.upload_expires_s,
        file_expires_after=body.expires_after.seconds if body.expires_after else None,
    )
    repository.add(session, row)
    return row


def get(session: Session, principal: Principal, upload_id: str) -> UploadRow:
    row = repository.get(session, principal.org_id, upload_id)
    if row is None:
        raise NotFound(f"No such Upload object: {upload_id}", param="upload_id")
    return row


def _require_pending(row: UploadRow) -> None:
    status = shown_status(row)
    if row.status == "pending" and status == "pending":
        return
    why = {
        "expired": "expired (an upload lasts one hour from its creation)",
        "completed": "already completed",
        "cancelled": "cancelled" if row.status == "cancelled" else "refused on complete, and its parts deleted",
    }[status]
    raise InvalidRequest(f"Upload {row.id} is {why}.", param="upload_id", code=f"upload_{status}")


def _end(session: Session, store: ObjectStore, row: UploadRow, status: str, **values: object) -> None:
    """pending → ``status``; the parts' bytes go once that has committed."""
    if not repository.finish(session, row.id, status, **values):
        session.refresh(row)
        _require_pending(row)  # raises: someone else ended it first
    row.status = status
    after_commit(session, partial(_delete_parts, store, upload_prefix(row.id)))


def _delete_parts(store: ObjectStore, prefix: str) -> None:
    store.delete_prefix(prefix)


async def add_part(
    request: Request, session: Session, store: ObjectStore, settings: Settings, principal: Principal, upload_id: str
) -> UploadPartRow:
    """Stream the `data` field into its own object, then record the part; nothing is kept on error."""
    check_declared_size(request, settings.upload_max_part_bytes)
    boundary = check_content_type(request)
    row = await run_in_threadpool(get, session, principal, upload_id)
    _require_pending(row)
    room = settings.upload_max_bytes - await run_in_threadpool(repository.parts_total, session, upload_id)
    if room <= 0:
        raise PayloadTooLarge(f"Upload {upload_id} already holds {settings.upload_max_bytes} bytes.", param="data")
    part = UploadPartRow(id=new_id("part_"), upload_id=upload_id, bytes=0, object_key="", created_at=now())
    part.object_key = part_key(upload_id, part.id)
    sink = PartSink(store, part.object_key, settings, min(settings.upload_max_part_bytes, room))
    try:
        await sink.read(request.stream(), boundary)
        if sink.size == 0:
            raise InvalidRequest("A part must hold at least one byte.", param="data")
        await sink.commit()
    except BaseException:
        await sink.abort()
        raise
    part.bytes = sink.size
    try:
        await run_in_threadpool(repository.add, session, part)
    except BaseException:
        await run_in_threadpool(store.delete, part.object_key)
        raise
    return part


def cancel(session: Session, store: ObjectStore, principal: Principal, upload_id: str) -> UploadRow:
    row = get(session, principal, upload_id)
    if row.status == "cancelled":
        return row  # the SDK retries a cancel whose answer it did not get
    _require_pending(row)
    _end(session, store, row, "cancelled")
    return row


def _ordered_parts(session: Session, row: UploadRow, part_ids: list[str]) -> list[UploadPartRow]:
    if len(set(part_ids)) != len(part_ids):
        raise InvalidRequest("`part_ids` names a part more than once.", param="part_ids", code="invalid_value")
    found = repository.parts_of(session, row.id, part_ids)
    missing = [p for p in part_ids if p not in found]
    if missing:
        raise InvalidRequest(
            f"No such part in upload {row.id}: {', '.join(missing[:5])}.", param="part_ids", code="invalid_value"
        )
    parts = [found[p] for p in part_ids]
    total = sum(p.bytes for p in parts)
    if total != row.bytes:
        raise InvalidRequest(
            f"The parts hold {total} bytes, but the upload was created with `bytes` = {row.bytes}.",
            param="bytes",
            code="invalid_value",
        )
    return parts


def _join(store: ObjectStore, settings: Settings, parts: list[UploadPartRow], key: str) -> tuple[
    ObjectWriter, ValidationResult, str
]:  # fmt: skip
    """Stream the parts in order through the validator, an md5 and the final object's writer (not yet committed)."""
    validator = ChatJSONLValidator(max_line_bytes=settings.max_line_bytes, min_examples=settings.min_examples)
    digest = hashlib.md5(usedforsecurity=False)
    writer = store.writer(key)
    try:
        for part in parts:
            for chunk in store.iter_chunks(part.object_key):
                validator.feed(chunk)
                digest.update(chunk)
                writer.write(chunk)
        return writer, validator.finish(), digest.hexdigest()
    except BaseException:
        writer.abort()
        raise


def complete(
    session: Session, store: ObjectStore, settings: Settings, principal: Principal, upload_id: str, body: UploadComplete
) -> tuple[UploadRow, FileRow | None, AppError | None]:
    """The upload and its file, or the refusal to return (not raise, so the cleanup it did commits)."""
    row = get(session, principal, upload_id)
    if row.status == "completed" and row.part_ids == body.part_ids:
        # A retry of a complete whose answer was lost: the same answer again.
        return row, files_repository.get(session, principal.org_id, row.file_id or "", include_expired=True), None
    _require_pending(row)
    parts = _ordered_parts(session, row, body.part_ids)
    file_id = new_id("file-")
    writer, result, md5 = _join(store, settings, parts, object_key(file_id))
    refusal: AppError | None = None
    if body.md5 is not None and body.md5.lower() != md5:
        refusal = InvalidRequest(
            f"md5 mismatch: the parts hash to {md5}, not {body.md5.lower()}; upload {upload_id} is discarded.",
            param="md5",
            code="md5_mismatch",
        )
    elif not result.ok:
        refusal = InvalidFile(f"{result.summary()} (upload {upload_id} is discarded)", param="file")
    if refusal is not None:
        writer.abort()
        _end(session, store, row, "failed")
        return row, None, refusal
    writer.commit()
    try:
        created = now()
        file = FileRow(
            id=file_id,
            org_id=row.org_id,
            filename=row.filename,
            purpose=row.purpose,
            bytes=writer.bytes_written,
            status="processed",
            examples=result.examples,
            object_key=object_key(file_id),
            created_at=created,
            expires_at=created + row.file_expires_after if row.file_expires_after else None,
        )
        files_repository.add(session, file)
        _end(session, store, row, "completed", file_id=file_id, part_ids=list(body.part_ids))
    except BaseException:
        store.delete(object_key(file_id))
        raise
    return row, file, None
