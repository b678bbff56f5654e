"""Uploads API shapes: requests as openai-python sends them, responses exactly as its `Upload` and `UploadPart`."""

from __future__ import annotations

from typing import Annotated, Literal, Self

from pydantic import AfterValidator, BaseModel, Field

from service.edge import SafeStr
from service.files.schemas import FileObject
from service.ids import now
from service.objects import ApiObject
from service.orm import FileRow, UploadPartRow, UploadRow

# OpenAI's fine-tune files are JSONL; clients label it several ways, and a generic binary type is what some send.
MIME_TYPES = (
    "text/jsonl",
    "application/jsonl",
    "application/x-jsonlines",
    "application/x-ndjson",
    "application/json",
    "text/plain",
    "application/octet-stream",
)
# Part ids are ours (`part_` + 24); a list as long as S3's own part limit is more than any client sends.
MAX_PARTS = 10_000


def _printable(name: str) -> str:
    # A filename ends up in headers and logs: control characters there are an injection, never a real name.
    if any(ord(c) < 0x20 or c == "\x7f" for c in name):
        raise ValueError("the filename must not contain NUL or other control characters")
    return name


class ExpiresAfter(BaseModel):
    """The expiry of the file the upload becomes (not of the upload itself, which always lasts an hour)."""

    anchor: Literal["created_at"]
    seconds: Annotated[int, Field(ge=3600, le=2592000)]


class UploadCreate(BaseModel):
    filename: Annotated[str, Field(min_length=1, max_length=512), AfterValidator(_printable)]
    purpose: Literal["fine-tune"]
    bytes: Annotated[int, Field(ge=1)]
    mime_type: Annotated[SafeStr, Field(min_length=1, max_length=200)]
    expires_after: ExpiresAfter | None = None


class UploadComplete(BaseModel):
    part_ids: Annotated[list[Annotated[SafeStr, Field(max_length=64)]], Field(min_length=1, max_length=MAX_PARTS)]
    md5: Annotated[str, Field(pattern=r"^[0-9a-fA-F]{32}$")] | None = None


def shown_status(row: UploadRow) -> str:
    """What the API reports: a pending upload past its hour is expired before the janitor gets to it; a failed
    one (its content was refused on complete) reads as cancelled, the nearest of OpenAI's four statuses."""
    if row.status == "pending" and row.expires_at <= now():
        return "expired"
    return "cancelled" if row.status == "failed" else row.status


class Upload(ApiObject):
    id: str
    object: Literal["upload"] = "upload"
    bytes: int
    created_at: int
    expires_at: int
    filename: str
    purpose: str
    status: Literal["pending", "completed", "cancelled", "expired"]
    file: FileObject | None = None

    @classmethod
    def from_row(cls, row: UploadRow, file: FileRow | None = None) -> Self:  # type: ignore[override]
        return cls(
            id=row.id,
            bytes=row.bytes,
            created_at=row.created_at,
            expires_at=row.expires_at,
            filename=row.filename,
            purpose=row.purpose,
            status=shown_status(row),  # type: ignore[arg-type]
            file=FileObject.from_row(file) if file is not None else None,
        )


class UploadPart(ApiObject):
    id: str
    object: Literal["upload.part"] = "upload.part"
    created_at: int
    upload_id: str

    @classmethod
    def from_row(cls, row: UploadPartRow) -> Self:  # type: ignore[override]
        return cls(id=row.id, created_at=row.created_at, upload_id=row.upload_id)
