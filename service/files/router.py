"""Files API routes: authorize → one service call → response schema."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from service.deps import CurrentOrg, SessionDep, SettingsDep, StoreDep
from service.errors import AppError, error_response
from service.files import screening, service
from service.files.schemas import FileDeleted, FileList, FileObject, FileScreen, ScreenCreate
from service.pagination import list_body

router = APIRouter(prefix="/files", tags=["files"])

# The handler parses the raw stream (service.upload), so FastAPI cannot derive the form: it is written out here.
_UPLOAD_FORM = {
    "required": True,
    "content": {
        "multipart/form-data": {
            "schema": {
                "type": "object",
                "required": ["file", "purpose"],
                "properties": {
                    "file": {
                        "type": "string",
                        "format": "binary",
                        "description": "Chat-format JSONL, one training example per line.",
                    },
                    "purpose": {"type": "string", "enum": list(service.UPLOAD_PURPOSES)},
                    "expires_after[anchor]": {"type": "string", "enum": ["created_at"]},
                    "expires_after[seconds]": {"type": "integer", "minimum": 3600, "maximum": 2592000},
                },
            }
        }
    },
}


@router.post("", response_model=FileObject, openapi_extra={"requestBody": _UPLOAD_FORM})
async def create_file(request: Request, session: SessionDep, store: StoreDep, settings: SettingsDep, org: CurrentOrg):
    try:
        row, result = await service.upload(request, session, store, settings, org)
    except AppError as exc:
        # The body is refused part-read; with keep-alive uvicorn would go on reading (and dropping) all the rest.
        return error_response(exc, {"Connection": "close"})
    if not result.ok:
        # Returned, not raised: the error row must commit so `files.retrieve` shows status_details.
        return error_response(service.invalid_file_error(row))
    return FileObject.from_row(row)


@router.get("", response_model=FileList)
def list_files(
    session: SessionDep,
    org: CurrentOrg,
    after: str | None = None,
    limit: Annotated[int, Query(ge=1, le=10000)] = 10000,
    order: Literal["asc", "desc"] = "desc",
    purpose: str | None = None,
):
    rows, has_more = service.list_files(session, org, after=after, limit=limit, order=order, purpose=purpose)
    return list_body([FileObject.from_row(r) for r in rows], has_more)


@router.get("/{file_id}", response_model=FileObject)
def retrieve_file(file_id: str, session: SessionDep, org: CurrentOrg):
    return FileObject.from_row(service.get(session, org, file_id))


@router.get(
    "/{file_id}/content",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/octet-stream": {"schema": {"type": "string", "format": "binary"}}}}},
)
def file_content(file_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    return StreamingResponse(service.content(session, store, org, file_id), media_type="application/octet-stream")


@router.delete("/{file_id}", response_model=FileDeleted)
def delete_file(file_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    return FileDeleted(id=service.delete(session, store, org, file_id), deleted=True)


@router.post(
    "/{file_id}/screen",
    status_code=202,
    response_model=FileScreen,
    responses={200: {"model": FileScreen, "description": "The screen has already succeeded"}},
)
def screen_file(
    file_id: str, body: ScreenCreate, response: Response, session: SessionDep, settings: SettingsDep, org: CurrentOrg
):
    """Antibody pre-screen of the file on a base model (extension): 202 while pending, 200 once it has finished."""
    row = screening.request(session, settings, org, file_id, body.model)
    response.status_code = 202 if row.status in screening.PENDING else 200
    return FileScreen.from_row(row)


@router.get("/{file_id}/screen", response_model=FileScreen)
def retrieve_screen(file_id: str, session: SessionDep, org: CurrentOrg, model: str | None = None):
    return FileScreen.from_row(screening.retrieve(session, org, file_id, model))
