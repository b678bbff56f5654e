"""Provider (admin key) endpoints for webhook endpoints: authorize → one service call → response body."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter
from pydantic import BaseModel, ConfigDict, Field

from service.deps import AdminOrg, SessionDep
from service.edge import SafeStr
from service.pagination import list_body
from service.webhooks import service

router = APIRouter(prefix="/admin/webhooks", tags=["admin"])


class CreateWebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[SafeStr, Field(max_length=2048)]
    # Organization name; null = provider-wide (every org's events).
    org: Annotated[SafeStr, Field(max_length=200)] | None = None


@router.post("")
def create_endpoint(body: CreateWebhookEndpoint, session: SessionDep, admin: AdminOrg):
    return service.endpoint_object(service.create(session, url=body.url, org=body.org), with_secret=True)


@router.get("")
def list_endpoints(session: SessionDep, admin: AdminOrg):
    return list_body([service.endpoint_object(r) for r in service.list_all(session)], has_more=False)


@router.get("/{endpoint_id}")
def retrieve_endpoint(endpoint_id: str, session: SessionDep, admin: AdminOrg):
    return service.endpoint_object(service.get(session, endpoint_id))


@router.delete("/{endpoint_id}")
def delete_endpoint(endpoint_id: str, session: SessionDep, admin: AdminOrg):
    endpoint_id = service.disable(session, endpoint_id)
    return {"id": endpoint_id, "object": "webhook_endpoint.deleted", "deleted": True}
