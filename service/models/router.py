"""Models API routes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import CurrentOrg, SessionDep, SettingsDep
from service.models import service

router = APIRouter(prefix="/models", tags=["models"])


@router.get("")
def list_models(session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return {"object": "list", "data": service.list_models(session, settings, org)}


@router.get("/{model_id}")
def retrieve_model(model_id: str, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return service.retrieve(session, settings, org, model_id)


@router.delete("/{model_id}")
def delete_model(model_id: str, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return service.delete(session, settings, org, model_id)
