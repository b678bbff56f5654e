"""Provider (admin key) endpoints for the base-model registry."""

from __future__ import annotations

from fastapi import APIRouter

from service.base_models import alignments, repository, service
from service.base_models.schemas import (
    AlignBaseModel,
    BaseModelAlignment,
    BaseModelAlignmentList,
    BaseModelList,
    BaseModelObject,
    RegisterBaseModel,
)
from service.deps import AdminOrg, SessionDep, SettingsDep, StoreDep

router = APIRouter(prefix="/admin/base_models", tags=["admin"])


@router.get("", response_model=BaseModelList)
def list_base_models(session: SessionDep, admin: AdminOrg):
    return BaseModelList(data=[BaseModelObject.from_row(r) for r in repository.list_all(session)])


@router.post("", response_model=BaseModelObject)
def register_base_model(body: RegisterBaseModel, session: SessionDep, store: StoreDep, admin: AdminOrg):
    """Register a base model, or replace one of that name (a retired one stays retired until reinstated)."""
    return BaseModelObject.from_row(service.register(session, store, **body.model_dump()))


@router.post("/{name}/retire", response_model=BaseModelObject)
def retire_base_model(name: str, session: SessionDep, admin: AdminOrg):
    """Take a base model off offer: no new jobs, screens or alignments; existing jobs and fine-tuned models keep
    working and no file is deleted. Retiring a retired base keeps its first `retired_at`."""
    return BaseModelObject.from_row(service.retire(session, name))


@router.post("/{name}/reinstate", response_model=BaseModelObject)
def reinstate_base_model(name: str, session: SessionDep, admin: AdminOrg):
    """Offer a retired base model again (registering the name again does not: it stays retired)."""
    return BaseModelObject.from_row(service.reinstate(session, name))


@router.post("/align", status_code=202, response_model=BaseModelAlignment)
def align_base_model(body: AlignBaseModel, session: SessionDep, settings: SettingsDep, admin: AdminOrg):
    """Queue an alignment run; poll `GET /v1/admin/base_models/alignments/{id}` for its status."""
    row = alignments.start(session, settings, body.model_dump(), body.gpu_class)
    return BaseModelAlignment.from_row(row)


@router.get("/alignments", response_model=BaseModelAlignmentList)
def list_alignments(session: SessionDep, admin: AdminOrg):
    return BaseModelAlignmentList(data=[BaseModelAlignment.from_row(r) for r in alignments.list_recent(session)])


@router.get("/alignments/{alignment_id}", response_model=BaseModelAlignment)
def retrieve_alignment(alignment_id: str, session: SessionDep, admin: AdminOrg):
    return BaseModelAlignment.from_row(alignments.get(session, alignment_id))
