"""First-start preparation for the embedded default (`ftaas up` / `make run`)."""

from __future__ import annotations

import os
from pathlib import Path

import click

from service.auth.service import create_key
from service.base_models import repository as base_models_repo
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.storage import open_store
from worker.alignment.spec import AlignmentSpec
from worker.progress import settings_reporter

DEMO_MODEL = "smollm2-135m-antibody"


def _kept_key(settings: Settings, filename: str, org: str, *, admin: bool = False) -> tuple[str, Path]:
    """A key created once and kept in FTAAS_HOME, readable by its owner only (the DB stores only its hash)."""
    path = Path(settings.home) / filename
    if path.exists():
        return path.read_text().strip(), path
    with session_scope(settings.database_url) as session:
        key = create_key(session, org, admin=admin)
    # Written owner-only from the first byte, then renamed: a reader never sees it empty or world-readable.
    tmp = path.with_name(f".{filename}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(key + "\n")
    os.replace(tmp, path)
    return key, path


def prepare(settings: Settings, public_url: str) -> None:
    """Migrate, pre-align SmolLM2 with Antibody's alignment stage on first start, print how to connect."""
    from worker.alignment.runner import run_and_publish  # torch: only `ftaas up` needs it, not `ftaas --help`

    Path(settings.home).mkdir(parents=True, exist_ok=True)
    upgrade(settings.database_url)
    open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region).ensure_bucket()
    with session_scope(settings.database_url) as session:
        known = base_models_repo.get(session, DEMO_MODEL)
        # Only a missing demo base is aligned and registered: a provider's retirement of it survives restarts.
        retired = known is not None and known.retired_at is not None
    if known is None:
        click.echo(
            f"First start: pre-aligning SmolLM2-135M-Instruct with Antibody's alignment stage "
            f"({settings.demo_align_steps} steps of batch {settings.demo_align_batch_size}, then HS on "
            f"{settings.demo_eval_harmful} held-out harmful prompts before and after). Later starts reuse the result."
        )
        spec = AlignmentSpec(
            name=DEMO_MODEL,
            max_steps=settings.demo_align_steps,
            batch_size=settings.demo_align_batch_size,
            eval_harmful=settings.demo_eval_harmful,
            eval_benign=settings.demo_eval_benign,
            retain_max_new_tokens=settings.demo_retain_max_new_tokens,
        )
        with settings_reporter(settings) as progress:
            row = run_and_publish(settings, spec, progress=progress)
        before, after = row["manifest"]["before"], row["manifest"]["after"]
        click.echo(
            f"Aligned: HS {before['hs']:.0f}% → {after['hs']:.0f}% (keyword judge), benign refusals "
            f"{before['benign_refusal_rate']:.0f}% → {after['benign_refusal_rate']:.0f}%"
        )
    key, _ = _kept_key(settings, "demo-api-key", "demo")
    _, admin_key_path = _kept_key(settings, "admin-api-key", "ops", admin=True)
    click.echo(f"API:        {public_url}/v1   (OpenAI-compatible; docs at {public_url}/docs)")
    click.echo(f"Dashboard:  {public_url}/dashboard (log in with an admin key)")
    click.echo(f"Admin key:  in {admin_key_path} (mode 0600; for the dashboard and /v1/admin)")
    state = f"retired; `ftaas base-models reinstate {DEMO_MODEL}` offers it again" if retired else "pre-aligned"
    click.echo(f"Base model: {DEMO_MODEL} ({state})")
    click.echo(f"Demo key:   {key}")
    click.echo(
        f"Try:        OPENAI_BASE_URL={public_url}/v1 OPENAI_API_KEY={key} python -c "
        '"import openai; print(openai.OpenAI().models.list())"'
    )
