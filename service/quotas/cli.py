"""`ftaas quotas set|show|reset ORG`: per-org overrides of the provider's FTAAS_QUOTA_* defaults."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

LIMIT_OPTIONS = ("running_jobs", "queued_jobs", "upload_bytes_per_day", "requests_per_minute")


class _Limit(click.ParamType):
    """A non-negative integer, or `default` to drop the override (the provider's default applies again)."""

    name = "N|default"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int | None:
        if value is None or str(value).lower() == "default":
            return None
        if not str(value).isdigit():
            self.fail(f"{value!r} is not a non-negative integer or 'default'", param, ctx)
        return int(value)


def _run(org: str, change: Any = None) -> None:
    from service.config import get_settings
    from service.db import session_scope
    from service.errors import AppError
    from service.quotas import service

    settings = get_settings()
    try:
        with session_scope(settings.database_url) as session:
            row = service.org(session, org)
            if change is not None:
                change(service, session, row)
        with session_scope(settings.database_url) as session:
            click.echo(json.dumps(service.show(session, settings, row).model_dump()))
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


@click.group()
def quotas() -> None:
    """Per-org quotas: running jobs, queued jobs, upload bytes per day, requests per minute."""


@quotas.command("show")
@click.argument("org")
def show(org: str) -> None:
    """Print the org's overrides, the limits in force (null: no limit) and its usage as JSON. ORG: id or name."""
    _run(org)


@quotas.command("set")
@click.argument("org")
@click.option("--running-jobs", type=_Limit(), help="jobs running at once (more wait queued)")
@click.option("--queued-jobs", type=_Limit(), help="jobs validating or queued (more: 429 on create)")
@click.option("--upload-bytes-per-day", type=_Limit(), help="bytes uploaded per UTC day")
@click.option("--requests-per-minute", type=_Limit(), help="authenticated requests per FTAAS_QUOTA_REQUEST_WINDOW_S")
@click.pass_context
def set_(ctx: click.Context, org: str, **limits: int | None) -> None:
    """Override some limits of ORG (the others keep their override); `default` drops one."""
    given = {name: limits[name] for name in LIMIT_OPTIONS if ctx.get_parameter_source(name).name != "DEFAULT"}
    if not given:
        raise click.UsageError("give at least one of --running-jobs, --queued-jobs, --upload-bytes-per-day, "
                               "--requests-per-minute")  # fmt: skip

    def change(service: Any, session: Any, row: Any) -> None:
        from service.quotas.schemas import QuotaLimits

        service.put(session, row, QuotaLimits(**given), merge=True)

    _run(org, change)


@quotas.command("reset")
@click.argument("org")
def reset(org: str) -> None:
    """Drop every override of ORG: the provider's defaults apply again."""
    _run(org, lambda service, session, row: service.delete(session, row))
