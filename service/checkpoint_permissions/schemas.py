"""Checkpoint permissions: the request body and the response objects, field for field openai-python's
`PermissionCreateParams`, `PermissionCreateResponse` / `PermissionListResponse` and `PermissionDeleteResponse`."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.edge import SafeStr
from service.objects import ApiObject

OBJECT: Literal["checkpoint.permission"] = "checkpoint.permission"
# A project here is an org (`organization_id` of a job, `owned_by` of a model); org ids are 28 characters.
ProjectId = Annotated[SafeStr, Field(min_length=1, max_length=64)]


class PermissionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project_ids: Annotated[list[ProjectId], Field(min_length=1, max_length=100)]


class CheckpointPermission(ApiObject):
    id: str
    object: Literal["checkpoint.permission"] = OBJECT
    created_at: int
    project_id: str


class PermissionList(ApiObject):
    """One shape for every reader: create's `SyncPage` reads `data`/`object`, list's cursor page `has_more` and
    `last_id`, the deprecated `retrieve` all five."""

    object: Literal["list"]
    data: list[CheckpointPermission]
    first_id: str | None
    last_id: str | None
    has_more: bool


class PermissionDeleted(ApiObject):
    id: str
    object: Literal["checkpoint.permission"] = OBJECT
    deleted: bool
