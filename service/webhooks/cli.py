"""`ftaas webhooks add|list|remove`: provider-managed webhook endpoints."""

from __future__ import annotations

import json
import sys

import click


@click.group()
def webhooks() -> None:
    """Webhook endpoints receiving fine_tuning.job.succeeded|failed|cancelled (Standard Webhooks signed)."""


@webhooks.command("add")
@click.option("--url", required=True, help="http(s) URL that receives the POSTs")
@click.option("--org", default=None, help="organization name (default: provider-wide, every org's events)")
def add(url: str, org: str | None) -> None:
    """Add an endpoint; its `whsec_` signing secret is printed on the last line (shown once)."""
    from service.config import get_settings
    from service.db import session_scope
    from service.errors import AppError
    from service.webhooks import service
    from service.webhooks.schemas import WebhookEndpointWithSecret

    try:
        with session_scope(get_settings().database_url) as session:
            body = WebhookEndpointWithSecret.from_row(service.create(session, url=url, org=org)).model_dump()
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    secret = body.pop("secret")
    click.echo(json.dumps(body))
    click.echo("signing secret (verify with openai's client.webhooks.unwrap(..., secret=...)):", err=True)
    click.echo(secret)


@webhooks.command("list")
def list_() -> None:
    """List active endpoints as JSON lines (secrets omitted)."""
    from service.config import get_settings
    from service.db import session_scope
    from service.webhooks import service
    from service.webhooks.schemas import WebhookEndpoint

    with session_scope(get_settings().database_url) as session:
        for row in service.list_all(session):
            click.echo(json.dumps(WebhookEndpoint.from_row(row).model_dump()))


@webhooks.command("remove")
@click.argument("endpoint_id")
def remove(endpoint_id: str) -> None:
    """Disable an endpoint; pending retries to it stop."""
    from service.config import get_settings
    from service.db import session_scope
    from service.errors import AppError
    from service.webhooks import service

    try:
        with session_scope(get_settings().database_url) as session:
            service.disable(session, endpoint_id)
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)
    click.echo(endpoint_id)
