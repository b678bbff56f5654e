"""Sharing a checkpoint with other orgs (OpenAI's checkpoint permissions; a project id here is an org id).

Only the org that trained a checkpoint manages its grants; to anyone else the checkpoint does not exist, grantee
included. A grant lets the grantee name the checkpoint as `model` wherever its owner could (serving applies the
same safety and readiness rules to both, `service/inference/service.py`); deleting the grant ends that at once,
since every request resolves the model afresh.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.checkpoint_permissions import repository
from service.errors import InvalidRequest, NotFound
from service.ids import new_id, now
from service.orm import CheckpointPermissionRow, CheckpointRow, JobRow

PARAM = "fine_tuned_model_checkpoint"


def _owned(session: Session, principal: Principal, name: str) -> CheckpointRow:
    ckpt = repository.owned_checkpoint(session, principal.org_id, name)
    if ckpt is None:
        raise NotFound(f"The checkpoint '{name}' does not exist or you do not have access to it.", param=PARAM)
    return ckpt


def _projects(session: Session, principal: Principal, project_ids: list[str]) -> list[str]:
    """The requested projects in order without repeats, each an existing org other than the owner."""
    wanted = list(dict.fromkeys(project_ids))
    if principal.org_id in wanted:
        raise InvalidRequest(
            f"'{principal.org_id}' is your own organization, which already has access to its checkpoints.",
            param="project_ids", code="invalid_value",
        )
    unknown = [p for p in wanted if p not in repository.existing_orgs(session, wanted)]
    if unknown:
        raise InvalidRequest(
            f"No project '{unknown[0]}'. A project id here is an organization id: the `organization_id` of that "
            "organization's fine-tuning jobs.", param="project_ids", code="invalid_value",
        )
    return wanted


def create(session: Session, principal: Principal, name: str, project_ids: list[str]) -> list[CheckpointPermissionRow]:
    """One grant per project; a project that already has one gets that one back, so a retry changes nothing."""
    ckpt = _owned(session, principal, name)
    return [
        repository.grant(
            session,
            CheckpointPermissionRow(id=new_id("cp_"), checkpoint_id=ckpt.id, project_id=project, created_at=now()),
        )
        for project in _projects(session, principal, project_ids)
    ]


def list_permissions(
    session: Session, principal: Principal, name: str, *,
    after: str | None, limit: int, ascending: bool, project_id: str | None,
) -> tuple[list[CheckpointPermissionRow], bool]:
    ckpt = _owned(session, principal, name)
    return repository.permissions_page(
        session, ckpt.id, project_id=project_id, after=after, limit=limit, newest_first=not ascending
    )


def delete(session: Session, principal: Principal, name: str, permission_id: str) -> str:
    ckpt = _owned(session, principal, name)
    row = repository.find(session, ckpt.id, permission_id=permission_id)
    if row is None:
        raise NotFound(f"No permission '{permission_id}' on checkpoint '{name}'.", param="permission_id")
    repository.revoke(session, row)
    return permission_id


def shared_with(session: Session, org_id: str, name: str) -> tuple[CheckpointRow, JobRow] | None:
    """The checkpoint ``name`` of another org, with its job, if that org has granted it to ``org_id``."""
    return repository.shared_checkpoint(session, org_id, name)
