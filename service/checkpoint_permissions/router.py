"""Checkpoint permissions routes (openai-python's `client.fine_tuning.checkpoints.permissions`)."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from service.checkpoint_permissions import service
from service.checkpoint_permissions.schemas import (
    CheckpointPermission,
    PermissionCreate,
    PermissionDeleted,
    PermissionList,
)
from service.deps import CurrentOrg, SessionDep
from service.pagination import list_body

router = APIRouter(prefix="/fine_tuning/checkpoints", tags=["fine-tuning"])

# `:path` because a checkpoint's name starts with its base model's, which may hold a `/` (e.g. `org/model`).
PERMISSIONS = "/{fine_tuned_model_checkpoint:path}/permissions"
Limit = Annotated[int, Query(ge=1, le=100)]


@router.post(PERMISSIONS, response_model=PermissionList)
def create_permissions(fine_tuned_model_checkpoint: str, body: PermissionCreate, session: SessionDep, org: CurrentOrg):
    rows = service.create(session, org, fine_tuned_model_checkpoint, body.project_ids)
    return list_body([CheckpointPermission.from_row(r) for r in rows], False)


@router.get(PERMISSIONS, response_model=PermissionList)
def list_permissions(
    fine_tuned_model_checkpoint: str,
    session: SessionDep,
    org: CurrentOrg,
    after: str | None = None,
    limit: Limit = 10,
    order: Literal["ascending", "descending"] = "descending",
    project_id: str | None = None,
):
    rows, more = service.list_permissions(
        session, org, fine_tuned_model_checkpoint,
        after=after, limit=limit, ascending=order == "ascending", project_id=project_id,
    )
    return list_body([CheckpointPermission.from_row(r) for r in rows], more)


@router.delete(PERMISSIONS + "/{permission_id}", response_model=PermissionDeleted)
def delete_permission(fine_tuned_model_checkpoint: str, permission_id: str, session: SessionDep, org: CurrentOrg):
    return PermissionDeleted(id=service.delete(session, org, fine_tuned_model_checkpoint, permission_id), deleted=True)
