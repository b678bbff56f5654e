"""Models API response objects, field for field openai-python's `Model` and `ModelDeleted`."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class ModelObject(BaseModel):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(BaseModel):
    object: Literal["list"]
    data: list[ModelObject]


class ModelDeleted(BaseModel):
    id: str
    object: Literal["model"]
    deleted: bool
