"""Request and response shapes of the admin quota routes (`/v1/admin/orgs/{org_id}/quotas`)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

INT32 = 2**31 - 1  # the Integer columns' bound on PostgreSQL


class QuotaLimits(BaseModel):
    """Each limit per org; null means no override (in `overrides`) or no limit (in `limits`)."""

    model_config = ConfigDict(extra="forbid")

    running_jobs: int | None = Field(None, ge=0, le=INT32, description="Jobs running at once; more wait queued")
    queued_jobs: int | None = Field(None, ge=0, le=INT32, description="Jobs validating or queued; more are a 429")
    upload_bytes_per_day: int | None = Field(None, ge=0, le=2**62, description="Bytes uploaded per UTC day")
    requests_per_minute: int | None = Field(
        None, ge=0, le=INT32, description="Authenticated /v1 requests per window (FTAAS_QUOTA_REQUEST_WINDOW_S)"
    )


class QuotaUsage(BaseModel):
    running_jobs: int
    queued_jobs: int
    upload_bytes_today: int
    requests_this_window: int


class OrgQuotas(BaseModel):
    object: Literal["organization.quotas"] = "organization.quotas"
    org_id: str
    org_name: str
    overrides: QuotaLimits
    limits: QuotaLimits
    usage: QuotaUsage
