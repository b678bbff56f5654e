"""The provider's page for one org: its quotas (overrides, the limits in force, usage now) and its recent jobs, and
setting its quotas from a form. The quota rules themselves are service/quotas/."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.config import Settings
from service.dashboard import repository
from service.dashboard.schemas import Job
from service.dashboard.service import job_summary
from service.errors import InvalidRequest
from service.quotas import service as quotas
from service.quotas.schemas import OrgQuotas, QuotaLimits

JOBS_SHOWN = 20
LIMITS = {  # form field → what the page calls it
    "running_jobs": "Jobs running at once",
    "queued_jobs": "Jobs validating or queued",
    "upload_bytes_per_day": "Upload bytes per UTC day",
    "requests_per_minute": "Requests per window",
}


@dataclass
class OrgPage:
    quotas: OrgQuotas
    jobs: list[Job]


def org_page(session: Session, settings: Settings, name: str) -> OrgPage:
    row = quotas.org(session, name)
    recent = repository.recent_jobs(session, JOBS_SHOWN, org=row.name)
    return OrgPage(quotas.show(session, settings, row), [job_summary(j, o) for j, o in recent])


def limits_from_form(form: Mapping[str, str]) -> QuotaLimits:
    """A blank field is no override (the provider's FTAAS_QUOTA_* default applies), as null is in the admin API."""
    values = {k: (form.get(k) or "").strip() for k in LIMITS}
    try:
        return QuotaLimits.model_validate({k: int(v) if v else None for k, v in values.items()})
    except (ValueError, ValidationError):
        raise InvalidRequest("Each limit must be a whole number ≥ 0, or blank for the provider's default.") from None


def set_quotas(session: Session, name: str, form: Mapping[str, str]) -> None:
    """Replace the org's overrides, as `PUT /v1/admin/orgs/{org}/quotas` does."""
    quotas.put(session, quotas.org(session, name), limits_from_form(form))
