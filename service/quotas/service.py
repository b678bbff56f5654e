"""Per-org quotas: the limits in force (provider settings, overridden per org) and where each is enforced.

* requests per window: every authenticated /v1 request (service/deps.py), right after authentication;
* queued jobs: job create (validating_files + queued of the org);
* upload bytes per UTC day: at upload start where the size is declared (`POST /v1/uploads`' `bytes`, a
  `POST /v1/files` body's Content-Length), else as the body streams;
* running jobs: at claim time (service/fine_tuning/repository.py); a job of an org at its limit stays queued.

Over a limit is a 429 in OpenAI's rate-limit shape (the same type and code as every 429 here) with `retry-after`
(the SDKs wait that long and retry), naming the limit in its message and in the `x-ftaas-quota` header.
"""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from service.config import Settings
from service.errors import NotFound, TooManyRequests
from service.ids import now
from service.orm import OrgRow
from service.quotas import repository
from service.quotas.counters import Window, counters_for
from service.quotas.schemas import OrgQuotas, QuotaLimits, QuotaUsage

LIMITS = tuple(QuotaLimits.model_fields)
DAY = 86400
REQUESTS, UPLOAD_BYTES = "requests", "upload_bytes"
QUOTA_HEADER = "x-ftaas-quota"


class QuotaExceeded(TooManyRequests):
    """Every 429 keeps OpenAI's `type: requests`, `code: rate_limit_exceeded`, which clients already branch on;
    which limit it was travels in an additive header (and the message), not in a code of our own."""

    def __init__(self, limit: str, message: str, *, retry_after: int, param: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after, param=param)
        self.headers = {**(self.headers or {}), QUOTA_HEADER: limit}


def overrides(session: Session, org_id: str) -> QuotaLimits:
    row = repository.get_override(session, org_id)
    return QuotaLimits(**{name: getattr(row, name) for name in LIMITS}) if row else QuotaLimits()


def limits(session: Session, settings: Settings, org_id: str) -> QuotaLimits:
    """The limits in force: the org's override where it has one, else the provider's FTAAS_QUOTA_* default."""
    own = overrides(session, org_id)
    return QuotaLimits(
        **{name: v if (v := getattr(own, name)) is not None else getattr(settings, f"quota_{name}") for name in LIMITS}
    )


def check_request(session: Session, settings: Settings, org_id: str) -> None:
    limit = limits(session, settings, org_id).requests_per_minute
    if limit is None:
        return  # no counting at all: unlimited orgs pay nothing per request
    window = Window.now(settings.quota_request_window_s)
    used = counters_for(settings).add(org_id, REQUESTS, window, 1)
    if used > limit:
        raise QuotaExceeded(
            "requests_per_minute",
            f"Rate limit reached for requests: limit {limit} requests per {window.seconds} s for your organization "
            f"(requests_per_minute). Retry after the window ends.",
            retry_after=window.retry_after(),
        )


def check_queued(session: Session, settings: Settings, org_id: str) -> None:
    limit = limits(session, settings, org_id).queued_jobs
    if limit is not None and repository.queued_jobs(session, org_id) >= limit:
        raise QuotaExceeded(
            "queued_jobs",
            f"Quota exceeded: your organization already has {limit} jobs validating or queued (queued_jobs limit "
            f"{limit}). Wait for some to start, or cancel some.",
            retry_after=settings.quota_queued_retry_after_s,
        )


def reserve_upload_bytes(session: Session, settings: Settings, org_id: str, amount: int, param: str) -> None:
    """Count ``amount`` more bytes against today's limit, or refuse (and un-count) them."""
    limit = limits(session, settings, org_id).upload_bytes_per_day
    if limit is None or amount <= 0:
        return
    window, counters = Window.now(DAY), counters_for(settings)
    used = counters.add(org_id, UPLOAD_BYTES, window, amount)
    if used > limit:
        counters.add(org_id, UPLOAD_BYTES, window, -amount)
        raise QuotaExceeded(
            "upload_bytes_per_day",
            f"Quota exceeded: this upload would take your organization past its upload_bytes_per_day limit of "
            f"{limit} bytes ({used - amount} used today, UTC).",
            retry_after=window.retry_after(),
            param=param,
        )


# --- the admin routes and the CLI ---------------------------------------------------------------------------------


def org(session: Session, id_or_name: str) -> OrgRow:
    row = repository.find_org(session, id_or_name)
    if row is None:
        raise NotFound(f"No such organization: {id_or_name}", param="org_id")
    return row


def show(session: Session, settings: Settings, row: OrgRow) -> OrgQuotas:
    counters = counters_for(settings)
    usage = QuotaUsage(
        running_jobs=repository.running_jobs(session, row.id, time.time()),
        queued_jobs=repository.queued_jobs(session, row.id),
        upload_bytes_today=counters.get(row.id, UPLOAD_BYTES, Window.now(DAY)),
        requests_this_window=counters.get(row.id, REQUESTS, Window.now(settings.quota_request_window_s)),
    )
    return OrgQuotas(
        org_id=row.id,
        org_name=row.name,
        overrides=overrides(session, row.id),
        limits=limits(session, settings, row.id),
        usage=usage,
    )


def put(session: Session, row: OrgRow, body: QuotaLimits, *, merge: bool = False) -> None:
    """Replace the org's overrides with ``body`` (PUT); ``merge`` keeps the ones ``body`` leaves unset (the CLI)."""
    values = body.model_dump(exclude_unset=merge)
    repository.put_override(session, row.id, now(), **values)


def delete(session: Session, row: OrgRow) -> None:
    repository.delete_override(session, row.id)
