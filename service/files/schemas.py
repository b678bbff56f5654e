"""File objects exactly as openai-python's `FileObject` / `FileDeleted`, plus the pre-screen extension's objects."""

from __future__ import annotations

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, Field

from service.edge import SafeStr
from service.objects import ApiObject
from service.orm import FileScreenRow


class FileObject(ApiObject):
    id: str
    object: Literal["file"] = "file"
    bytes: int
    created_at: int
    filename: str
    purpose: str
    status: Literal["uploaded", "processed", "error"]
    expires_at: int | None = None
    status_details: str | None = None


class FileList(ApiObject):
    object: Literal["list"] = "list"
    data: list[FileObject]
    first_id: str | None = None
    last_id: str | None = None
    has_more: bool


class FileDeleted(ApiObject):
    id: str
    object: Literal["file"] = "file"
    deleted: bool


class ScreenCreate(BaseModel):
    model: Annotated[SafeStr, Field(min_length=1, max_length=200)]  # BaseModelRow.name is String(200)


class FileScreen(ApiObject):
    """`file.screen` (see `service.files.screening`): one Antibody pre-screen of a file on a base model."""

    id: str
    object: Literal["file.screen"] = "file.screen"
    file_id: str
    model: str
    status: Literal["queued", "running", "succeeded", "failed"]
    created_at: int
    finished_at: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None

    @classmethod
    def from_row(cls, row: FileScreenRow) -> Self:
        return cls(
            id=row.id,
            file_id=row.file_id,
            model=row.base_model,
            status=row.status,  # type: ignore[arg-type]
            created_at=row.created_at,
            finished_at=row.finished_at,
            result=row.result,
            error=row.error,
        )
