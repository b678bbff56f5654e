"""Models API response objects, field for field openai-python's `Model` and `ModelDeleted`."""

from __future__ import annotations

from typing import Literal, Self

from service.objects import ApiObject
from service.orm import BaseModelRow, FineTunedModelRow

PROVIDER = "system"  # `owned_by` of the provider's base models


class ModelObject(ApiObject):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    # Ours, additive: POST /v1/chat/completions can call this model (an inference backend serves its base)
    servable: bool = False

    @classmethod
    def from_row(cls, row: BaseModelRow | FineTunedModelRow, backends: dict[str, str] | None = None) -> Self:
        """A provider base model (owned by `system`) or one of an org's fine-tuned models (owned by the org);
        ``backends`` is ``inference_backends`` (base model name → URL, "*" for all)."""
        base = row.name if isinstance(row, BaseModelRow) else row.base_model
        servable = bool(backends) and (base in backends or "*" in backends)
        if isinstance(row, BaseModelRow):
            return cls(id=row.name, created=row.created_at, owned_by=PROVIDER, servable=servable)
        return cls(id=row.id, created=row.created_at, owned_by=row.org_id, servable=servable)


class ModelList(ApiObject):
    object: Literal["list"] = "list"
    data: list[ModelObject]


class ModelDeleted(ApiObject):
    id: str
    object: Literal["model"] = "model"
    deleted: bool
