"""Provider (admin key) endpoints for the base-model registry."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.base_models import alignments, repository, service
from service.deps import AdminOrg, SessionDep, SettingsDep, StoreDep
from service.edge import BoundedJson, SafeStr

router = APIRouter(prefix="/admin/base_models", tags=["admin"])

# The column widths of BaseModelRow / AlignmentRow: longer would be a database error, not a 400.
ModelName = Annotated[SafeStr, Field(max_length=200)]
GpuClass = Annotated[SafeStr, Field(max_length=40)]


class RegisterBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ModelName
    path: Annotated[SafeStr, Field(max_length=1024)]
    aligned: bool = False
    gpu_class: GpuClass = "default"
    manifest: BoundedJson | None = None


@router.get("")
def list_base_models(session: SessionDep, admin: AdminOrg):
    return {"object": "list", "data": [service.base_model_object(r) for r in repository.list_all(session)]}


@router.post("")
def register_base_model(body: RegisterBaseModel, session: SessionDep, store: StoreDep, admin: AdminOrg):
    return service.base_model_object(service.register(session, store, **body.model_dump()))


class AlignBaseModel(BaseModel):
    """Antibody alignment stage (stage 1) on a source model; the result is registered under `name`."""

    model_config = ConfigDict(extra="forbid")
    name: ModelName
    source: ModelName = "smollm2"
    mode: Literal["antibody", "sft"] = "antibody"
    max_steps: int = Field(default=40, ge=1, le=100_000)
    batch_size: int = Field(default=8, ge=2, le=1024)
    eval_harmful: int = Field(default=100, ge=1, le=100_000)
    eval_benign: int = Field(default=50, ge=1, le=100_000)
    gpu_class: GpuClass = "default"


@router.post("/align", status_code=202)
def align_base_model(body: AlignBaseModel, session: SessionDep, settings: SettingsDep, admin: AdminOrg):
    """Queue an alignment run; poll `GET /v1/admin/base_models/alignments/{id}` for its status."""
    row = alignments.start(session, settings, body.model_dump(), body.gpu_class)
    return alignments.alignment_object(row)


@router.get("/alignments")
def list_alignments(session: SessionDep, admin: AdminOrg):
    return {"object": "list", "data": [alignments.alignment_object(r) for r in alignments.list_recent(session)]}


@router.get("/alignments/{alignment_id}")
def retrieve_alignment(alignment_id: str, session: SessionDep, admin: AdminOrg):
    return alignments.alignment_object(alignments.get(session, alignment_id))
