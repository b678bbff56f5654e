"""Webhook endpoint admin API: the request body and the response objects (`from_row`: the row's columns)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.edge import SafeStr
from service.objects import ApiObject


class CreateWebhookEndpoint(BaseModel):
    model_config = ConfigDict(extra="forbid")
    url: Annotated[SafeStr, Field(max_length=2048)]
    # Organization name; null = provider-wide (every org's events).
    org: Annotated[SafeStr, Field(max_length=200)] | None = None


class WebhookEndpoint(ApiObject):
    id: str
    object: Literal["webhook_endpoint"] = "webhook_endpoint"
    url: str
    org_id: str | None  # null: provider-wide
    created_at: int


class WebhookEndpointWithSecret(WebhookEndpoint):
    """Only on creation, like OpenAI's `WebhookEndpointWithSecret`: the `whsec_` signing secret, shown once."""

    secret: str


class WebhookEndpointList(ApiObject):
    object: Literal["list"] = "list"
    data: list[WebhookEndpoint]
    first_id: str | None
    last_id: str | None
    has_more: bool


class WebhookEndpointDeleted(ApiObject):
    id: str
    object: Literal["webhook_endpoint.deleted"] = "webhook_endpoint.deleted"
    deleted: bool
