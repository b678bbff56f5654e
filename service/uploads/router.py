"""Uploads API routes (openai-python's `client.uploads`): authorize → one service call → response object."""

from __future__ import annotations

from fastapi import APIRouter, Request

from service.deps import CurrentOrg, SessionDep, SettingsDep, StoreDep
from service.errors import AppError, error_response
from service.uploads import service
from service.uploads.schemas import Upload, UploadComplete, UploadCreate, UploadPart

router = APIRouter(prefix="/uploads", tags=["uploads"])

# The handler parses the raw stream (service.add_part), so FastAPI cannot derive the form: it is written out here.
_PART_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["data"],
                "properties": {
                    "data": {"type": "string", "format": "binary", "description": "The part's bytes (at most 64 MB)."}
                },
            }
        }
    },
}


@router.post("", response_model=Upload)
def create_upload(body: UploadCreate, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    """An upload expires an hour after it is created; `expires_after` applies to the file it becomes."""
    return Upload.from_row(service.create(session, settings, org, body))


@router.post("/{upload_id}/parts", response_model=UploadPart, openapi_extra={"requestBody": _PART_FORM})
async def add_upload_part(
    upload_id: str, request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep, org: CurrentOrg
):
    try:
        part = await service.add_part(request, session, store, settings, org, upload_id)
    except AppError as exc:
        # The body is refused part-read; with keep-alive uvicorn would go on reading (and dropping) all the rest.
        return error_response(exc, {"Connection": "close"})
    return UploadPart.from_row(part)


@router.post("/{upload_id}/complete", response_model=Upload)
def complete_upload(
    upload_id: str, body: UploadComplete, session: SessionDep, store: StoreDep, settings: SettingsDep, org: CurrentOrg
):
    """Joins the parts in `part_ids` order into a validated `file-…` (checked against `md5` when given)."""
    row, file, refusal = service.complete(session, store, settings, org, upload_id, body)
    if refusal is not None:
        # Returned, not raised: the discarded upload's state (and its parts' deletion) must commit.
        return error_response(refusal)
    return Upload.from_row(row, file)


@router.post("/{upload_id}/cancel", response_model=Upload)
def cancel_upload(upload_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    return Upload.from_row(service.cancel(session, store, org, upload_id))
