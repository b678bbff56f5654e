"""All SQL for webhook endpoints (used by the admin API and by the worker that delivers events)."""

from __future__ import annotations

from sqlalchemy import or_, select
from sqlalchemy.orm import Session

from service.orm import OrgRow, WebhookEndpointRow


def add(session: Session, row: WebhookEndpointRow) -> WebhookEndpointRow:
    session.add(row)
    session.flush()
    return row


def get_active(session: Session, endpoint_id: str) -> WebhookEndpointRow | None:
    return session.scalar(
        select(WebhookEndpointRow).where(
            WebhookEndpointRow.id == endpoint_id, WebhookEndpointRow.disabled_at.is_(None)
        )
    )


def list_active(session: Session) -> list[WebhookEndpointRow]:
    query = select(WebhookEndpointRow).where(WebhookEndpointRow.disabled_at.is_(None))
    return list(session.scalars(query.order_by(WebhookEndpointRow.created_at, WebhookEndpointRow.id)))


def active_for_org(session: Session, org_id: str) -> list[WebhookEndpointRow]:
    """The org's own endpoints plus the provider-wide ones (org_id NULL), which receive every org's events."""
    query = select(WebhookEndpointRow).where(
        WebhookEndpointRow.disabled_at.is_(None),
        or_(WebhookEndpointRow.org_id == org_id, WebhookEndpointRow.org_id.is_(None)),
    )
    return list(session.scalars(query.order_by(WebhookEndpointRow.created_at, WebhookEndpointRow.id)))


def org_id_by_name(session: Session, name: str) -> str | None:
    return session.scalar(select(OrgRow.id).where(OrgRow.name == name))
