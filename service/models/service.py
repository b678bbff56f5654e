"""Models API: the provider's pre-aligned base models plus the caller's fine-tuned models."""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.base_models import service as base_models
from service.config import Settings
from service.errors import Forbidden, NotFound
from service.ids import now
from service.models import repository
from service.models.schemas import ModelDeleted, ModelObject


def list_models(session: Session, settings: Settings, principal: Principal) -> list[ModelObject]:
    backends = settings.inference_backends
    bases = [ModelObject.from_row(b, backends) for b in base_models.listed(session, settings)]
    return bases + [ModelObject.from_row(m, backends) for m in repository.fine_tuned(session, principal.org_id)]


def retrieve(session: Session, settings: Settings, principal: Principal, model_id: str) -> ModelObject:
    base = base_models.usable(session, settings, model_id)
    if base is not None:
        return ModelObject.from_row(base, settings.inference_backends)
    tuned = repository.fine_tuned(session, principal.org_id, model_id)
    if not tuned:
        base_models.refuse_retired(session, settings, model_id, "new jobs or requests", NotFound)
        raise NotFound(
            f"The model '{model_id}' does not exist or you do not have access to it.", param="model"
        )
    return ModelObject.from_row(tuned[0], settings.inference_backends)


def delete(session: Session, settings: Settings, principal: Principal, model_id: str) -> ModelDeleted:
    if base_models.usable(session, settings, model_id) is not None:
        raise Forbidden(
            f"'{model_id}' is a provider base model; only your fine-tuned models can be deleted.",
            param="model",
        )
    tuned = repository.fine_tuned(session, principal.org_id, model_id)
    if not tuned:
        raise NotFound(
            f"The model '{model_id}' does not exist or you do not have access to it.", param="model"
        )
    tuned[0].deleted_at = now()
    return ModelDeleted(id=model_id, deleted=True)
