"""Models API: the provider's pre-aligned base models plus the caller's fine-tuned models."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.base_models import service as base_models
from service.config import Settings
from service.errors import Forbidden, NotFound
from service.ids import now
from service.orm import FineTunedModelRow

PROVIDER = "system"


def _model(id: str, created: int, owned_by: str) -> dict[str, Any]:
    return {"id": id, "object": "model", "created": created, "owned_by": owned_by}


def _fine_tuned(session: Session, org_id: str, model_id: str | None = None) -> list[FineTunedModelRow]:
    query = select(FineTunedModelRow).where(
        FineTunedModelRow.org_id == org_id, FineTunedModelRow.deleted_at.is_(None)
    )
    if model_id is not None:
        query = query.where(FineTunedModelRow.id == model_id)
    return list(session.scalars(query.order_by(FineTunedModelRow.created_at)))


def list_models(session: Session, settings: Settings, principal: Principal) -> list[dict[str, Any]]:
    bases = [_model(b.name, b.created_at, PROVIDER) for b in base_models.listed(session, settings)]
    tuned = [_model(m.id, m.created_at, principal.org_id) for m in _fine_tuned(session, principal.org_id)]
    return bases + tuned


def retrieve(session: Session, settings: Settings, principal: Principal, model_id: str) -> dict[str, Any]:
    base = base_models.usable(session, settings, model_id)
    if base is not None:
        return _model(base.name, base.created_at, PROVIDER)
    tuned = _fine_tuned(session, principal.org_id, model_id)
    if not tuned:
        raise NotFound(
            f"The model '{model_id}' does not exist or you do not have access to it.", param="model"
        )
    return _model(tuned[0].id, tuned[0].created_at, principal.org_id)


def delete(session: Session, settings: Settings, principal: Principal, model_id: str) -> dict[str, Any]:
    if base_models.usable(session, settings, model_id) is not None:
        raise Forbidden(
            f"'{model_id}' is a provider base model; only your fine-tuned models can be deleted.",
            param="model",
        )
    tuned = _fine_tuned(session, principal.org_id, model_id)
    if not tuned:
        raise NotFound(
            f"The model '{model_id}' does not exist or you do not have access to it.", param="model"
        )
    tuned[0].deleted_at = now()
    return {"id": model_id, "object": "model", "deleted": True}
