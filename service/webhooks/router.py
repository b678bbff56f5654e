"""Provider (admin key) endpoints for webhook endpoints: authorize → one service call → response object."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import AdminOrg, SessionDep
from service.pagination import list_body
from service.webhooks import service
from service.webhooks.schemas import (
    CreateWebhookEndpoint,
    WebhookEndpoint,
    WebhookEndpointDeleted,
    WebhookEndpointList,
    WebhookEndpointWithSecret,
)

router = APIRouter(prefix="/admin/webhooks", tags=["admin"])


@router.post("", response_model=WebhookEndpointWithSecret)
def create_endpoint(body: CreateWebhookEndpoint, session: SessionDep, admin: AdminOrg):
    return WebhookEndpointWithSecret.from_row(service.create(session, url=body.url, org=body.org))


@router.get("", response_model=WebhookEndpointList)
def list_endpoints(session: SessionDep, admin: AdminOrg):
    return list_body([WebhookEndpoint.from_row(r) for r in service.list_all(session)], has_more=False)


@router.get("/{endpoint_id}", response_model=WebhookEndpoint)
def retrieve_endpoint(endpoint_id: str, session: SessionDep, admin: AdminOrg):
    return WebhookEndpoint.from_row(service.get(session, endpoint_id))


@router.delete("/{endpoint_id}", response_model=WebhookEndpointDeleted)
def delete_endpoint(endpoint_id: str, session: SessionDep, admin: AdminOrg):
    return WebhookEndpointDeleted(id=service.disable(session, endpoint_id), deleted=True)
