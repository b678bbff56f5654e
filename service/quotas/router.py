"""Provider (admin key) routes for per-org quotas: authorize → one service call → response object."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import AdminOrg, SessionDep, SettingsDep
from service.quotas import service
from service.quotas.schemas import OrgQuotas, QuotaLimits

router = APIRouter(prefix="/admin/orgs/{org_id}/quotas", tags=["admin"])


@router.get("", response_model=OrgQuotas)
def retrieve_quotas(org_id: str, session: SessionDep, settings: SettingsDep, admin: AdminOrg):
    """The org's overrides, the limits in force (null: no limit) and current usage. `org_id` may be its name."""
    return service.show(session, settings, service.org(session, org_id))


@router.put("", response_model=OrgQuotas)
def replace_quotas(org_id: str, body: QuotaLimits, session: SessionDep, settings: SettingsDep, admin: AdminOrg):
    """Set the org's overrides; a null or absent limit falls back to the provider's FTAAS_QUOTA_* default."""
    row = service.org(session, org_id)
    service.put(session, row, body)
    return service.show(session, settings, row)


@router.delete("", response_model=OrgQuotas)
def delete_quotas(org_id: str, session: SessionDep, settings: SettingsDep, admin: AdminOrg):
    """Drop every override of the org: the provider's defaults apply again."""
    row = service.org(session, org_id)
    service.delete(session, row)
    return service.show(session, settings, row)
