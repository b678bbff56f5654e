"""Provider (admin key) endpoints for the base-model registry."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict

from service.base_models import repository, service
from service.deps import AdminOrg, SessionDep, StoreDep

router = APIRouter(prefix="/admin/base_models", tags=["admin"])


class RegisterBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str
    path: str
    aligned: bool = False
    gpu_class: str = "default"
    manifest: dict[str, Any] | None = None


@router.get("")
def list_base_models(session: SessionDep, admin: AdminOrg):
    return {"object": "list", "data": [service.base_model_object(r) for r in repository.list_all(session)]}


@router.post("")
def register_base_model(body: RegisterBaseModel, session: SessionDep, store: StoreDep, admin: AdminOrg):
    return service.base_model_object(service.register(session, store, **body.model_dump()))
