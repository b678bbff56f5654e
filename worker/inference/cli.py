"""`ftaas inference`: the embedded inference server for one base model (vLLM's protocol, worker/inference/)."""

from __future__ import annotations

from pathlib import Path

import click

from service import logs
from service.config import get_settings


@click.command("inference")
@click.option("--base", required=True, help="registered base model to serve (its registry name is the served name)")
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None,
              help="serve this HF folder under --base instead of the registered weights")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=None, type=int, help="default: FTAAS_INFERENCE_PORT (8001)")
@click.option("--device", default=None, help="cpu, cuda, cuda:1 … (default: cuda if available)")
def inference_command(base: str, model_dir: Path | None, host: str, port: int | None, device: str | None) -> None:
    """Serve chat completions of BASE and its LoRA adapters (loaded at run time by the API) over HTTP."""
    import uvicorn

    from worker.inference.main import build_app

    settings = get_settings()
    logs.configure_from_settings(settings)
    app = build_app(settings, base, model_dir=model_dir, device=device)
    click.echo(f"Inference for {base} on http://{host}:{port or settings.inference_port}")
    uvicorn.run(
        app,
        host=host,
        port=port or settings.inference_port,
        log_level="warning",
        log_config=logs.dict_config(settings.log_format, settings.log_level),
    )
