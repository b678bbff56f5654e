"""Webhook endpoints (provider admin): create with a fresh `whsec_` secret, list, disable."""

from __future__ import annotations

from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from service.errors import InvalidRequest, NotFound
from service.ids import new_id, now
from service.orm import WebhookEndpointRow
from service.webhooks import repository
from service.webhooks.signing import new_secret


def _check_url(url: str) -> str:
    url = url.strip()
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise InvalidRequest(
            "url must be an absolute http(s) URL (max 2048 characters).", param="url", code="invalid_url"
        )
    return url


def create(session: Session, *, url: str, org: str | None = None) -> WebhookEndpointRow:
    """An endpoint for one org's job events, or for every org's (`org` None: provider-wide)."""
    url = _check_url(url)
    org_id = None
    if org is not None:
        org_id = repository.org_id_by_name(session, org)
        if org_id is None:
            raise InvalidRequest(f"No organization named '{org}'.", param="org", code="invalid_value")
    row = WebhookEndpointRow(id=new_id("wh_"), org_id=org_id, url=url, secret=new_secret(), created_at=now())
    return repository.add(session, row)


def get(session: Session, endpoint_id: str) -> WebhookEndpointRow:
    row = repository.get_active(session, endpoint_id)
    if row is None:
        raise NotFound(f"No such webhook endpoint: {endpoint_id}", param="id")
    return row


def list_all(session: Session) -> list[WebhookEndpointRow]:
    return repository.list_active(session)


def disable(session: Session, endpoint_id: str) -> str:
    """Soft delete: the row stays for audit, and queued retries see `disabled_at` and stop."""
    get(session, endpoint_id).disabled_at = now()
    return endpoint_id
