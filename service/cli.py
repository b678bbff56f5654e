"""`ftaas` command line: serve, migrate, keys, base-models (and, from the worker package, train/worker/up)."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable

import click
import uvicorn
from sqlalchemy.orm import Session

from service import logs
from service.auth.service import create_key
from service.base_models import repository, service
from service.config import get_settings
from service.db import session_scope
from service.errors import AppError
from service.metrics.http import multiprocess_dir, prepare_multiprocess
from service.migrate import upgrade
from service.orm import BaseModelRow
from service.storage import open_store


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Antibody fine-tuning-as-a-service. Settings come from FTAAS_* environment variables."""


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=1, show_default=True, type=int, help="uvicorn worker processes")
def serve(host: str, port: int, workers: int) -> None:
    """Run the API server (uvicorn)."""
    settings = get_settings()
    if workers > 1 or multiprocess_dir():  # every process's request counts, whichever one is scraped
        prepare_multiprocess(settings.home / "prometheus")
    # Open event streams would otherwise hold a shutdown for up to FTAAS_STREAM_MAX_S; followers reconnect.
    uvicorn.run(
        "service.app:create_app",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=settings.log_level.lower(),
        log_config=logs.dict_config(settings.log_format, settings.log_level),
        access_log=False,  # service/request_id.py writes one access line per request, with its ids
        timeout_graceful_shutdown=10,
    )


@main.command()
def migrate() -> None:
    """Apply database migrations (FTAAS_DATABASE_URL)."""
    settings = get_settings()
    upgrade(settings.database_url)
    click.echo(f"database at head: {settings.database_url.split('@')[-1]}")


@main.group()
def keys() -> None:
    """API keys."""


@keys.command("create")
@click.option("--org", "org", required=True, help="organization name (created if new)")
@click.option("--admin", is_flag=True, help="provider key for /v1/admin endpoints")
def keys_create(org: str, admin: bool) -> None:
    """Create an API key; the key is printed on the last line (it is stored only hashed)."""
    with session_scope(get_settings().database_url) as session:
        key = create_key(session, org, admin=admin)
    click.echo(f"created {'admin ' if admin else ''}key for org '{org}' (shown once):", err=True)
    click.echo(key)


@main.group("base-models")
def base_models() -> None:
    """Provider base models (pre-aligned with Antibody's alignment stage)."""


@base_models.command("register")
@click.option("--name", required=True)
@click.option("--path", required=True, help="local HF model folder, or store://base-models/NAME")
@click.option(
    "--aligned/--unaligned", default=False, show_default=True, help="pre-aligned with Antibody stage 1"
)
@click.option("--gpu-class", default="default", show_default=True, help="worker queue this model routes to")
def base_models_register(name: str, path: str, aligned: bool, gpu_class: str) -> None:
    """Register (or update) a base model customers may fine-tune."""
    settings = get_settings()
    store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    try:
        with session_scope(settings.database_url) as session:
            row = service.register(session, store, name=name, path=path, aligned=aligned, gpu_class=gpu_class)
            click.echo(json.dumps(service.base_model_object(row)))
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


@base_models.command("list")
def base_models_list() -> None:
    """List registered base models as JSON lines (a retired one has `retired_at` set)."""
    with session_scope(get_settings().database_url) as session:
        for row in repository.list_all(session):
            click.echo(json.dumps(service.base_model_object(row)))


@base_models.command("retire")
@click.argument("name")
def base_models_retire(name: str) -> None:
    """Retire NAME: no new jobs, screens or alignments on it; its running jobs and fine-tuned models keep working."""
    _echo_changed(name, service.retire)


@base_models.command("reinstate")
@click.argument("name")
def base_models_reinstate(name: str) -> None:
    """Offer a retired NAME to customers again."""
    _echo_changed(name, service.reinstate)


def _echo_changed(name: str, change: Callable[[Session, str], BaseModelRow]) -> None:
    try:
        with session_scope(get_settings().database_url) as session:
            click.echo(json.dumps(service.base_model_object(change(session, name))))
    except AppError as exc:
        click.echo(f"error: {exc.message}", err=True)
        sys.exit(2)


def _register_worker_commands() -> None:
    try:
        from worker.training.cli import train_command
    except ImportError:  # the training library is optional on API-only installs
        return
    main.add_command(train_command, "train")
    from worker.cli import align_command, bench_command, up_command, worker_command

    base_models.add_command(align_command, "align")

    main.add_command(worker_command, "worker")
    main.add_command(up_command, "up")
    main.add_command(bench_command, "bench")
    from worker.inference.cli import inference_command

    main.add_command(inference_command, "inference")


_register_worker_commands()
from service.webhooks.cli import webhooks  # noqa: E402  (click only; commands import lazily)

main.add_command(webhooks)
from service.quotas.cli import quotas  # noqa: E402  (click only; commands import lazily)

main.add_command(quotas)


if __name__ == "__main__":
    main()
