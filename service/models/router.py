"""Models API routes."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import CurrentOrg, SessionDep, SettingsDep
from service.models import service
from service.models.schemas import ModelDeleted, ModelList, ModelObject

router = APIRouter(prefix="/models", tags=["models"])


@router.get("", response_model=ModelList)
def list_models(session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return ModelList(data=service.list_models(session, settings, org))


@router.get("/{model_id}", response_model=ModelObject)
def retrieve_model(model_id: str, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return service.retrieve(session, settings, org, model_id)


@router.delete("/{model_id}", response_model=ModelDeleted)
def delete_model(model_id: str, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return service.delete(session, settings, org, model_id)
