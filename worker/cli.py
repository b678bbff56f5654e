"""`ftaas worker` (a Celery worker + lease sweeper) and `ftaas up` (the embedded default: API + one worker + the
embedded inference server)."""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import sys
import threading
import uuid
from pathlib import Path

import click
from celery.signals import setup_logging

from service import broker, logs
from service.config import Settings, get_settings
from service.migrate import upgrade
from service.orm import AlignmentRow, EvaluationRow, FileScreenRow
from worker import leases, registry
from worker import metrics as worker_metrics
from worker.alignment.demo import DEMO_MODEL, prepare
from worker.alignment.spec import AlignmentSpec
from worker.celery_app import app_for
from worker.progress import settings_reporter
from worker.store import store_for

log = logging.getLogger(__name__)


def start_sweeper(settings: Settings, info: registry.WorkerInfo | None = None) -> threading.Thread:
    """Every worker sweeps: re-queues jobs whose lease expired and re-sends jobs no worker took; re-queues
    screens, alignments and re-evaluations whose worker stopped beating. It also keeps the worker's registry row
    fresh."""

    def loop() -> None:
        while True:
            try:
                if info is not None:
                    registry.beat(settings, info, registry.current_task())
                leases.sweep_jobs(settings, lambda job_id: broker.resend_job(settings, job_id))
                leases.sweep_runs(settings, FileScreenRow, lambda run_id: broker.resend_screen(settings, run_id))
                leases.sweep_runs(settings, AlignmentRow, lambda run_id: broker.resend_alignment(settings, run_id))
                leases.sweep_runs(settings, EvaluationRow, lambda run_id: broker.resend_evaluation(settings, run_id))
            except Exception:
                log.exception("sweep failed")
            threading.Event().wait(max(0.5, settings.lease_seconds / 2))

    thread = threading.Thread(target=loop, name="lease-sweeper", daemon=True)
    thread.start()
    return thread


@click.command("worker")
@click.option("--gpu-class", "gpu_classes", default=None, help="comma-separated GPU classes (queues gpu.<class>)")
@click.option("--name", default=None, help="worker node name (default: ftaas-<random>@host)")
@click.option("--loglevel", default="INFO", show_default=True)
@click.option("--metrics-port", type=int, default=None, help="Prometheus port (FTAAS_WORKER_METRICS_PORT; 0 = off)")
@click.option("--gpus", type=click.IntRange(min=1), default=None, help="devices each job trains on (FTAAS_WORKER_GPUS)")
def worker_command(
    gpu_classes: str | None, name: str | None, loglevel: str, metrics_port: int | None, gpus: int | None
) -> None:
    """Run one worker process: one job at a time (on one GPU, or on --gpus ranks), Antibody training, leases and
    checkpoints."""
    from worker.fine_tuning import runner  # torch/transformers: loaded by a worker now, not by `ftaas --help`

    if gpus is not None:  # before the settings are first read: the tasks read them again
        os.environ["FTAAS_WORKER_GPUS"] = str(gpus)
    settings = get_settings()
    upgrade(settings.database_url)
    logs.configure_from_settings(settings, loglevel)
    # Celery leaves logging alone when a setup_logging receiver exists: its lines keep the one format and ids.
    setup_logging.connect(lambda **_: logs.configure_from_settings(settings, loglevel), weak=False)
    runner.warm_up(settings, store_for(settings))
    classes = [c.strip() for c in (gpu_classes or settings.worker_gpu_classes).split(",") if c.strip()]
    queues = [f"gpu.{c}" for c in classes]
    # Celery would expand %h the same way; naming the node here lets the registry row match the runs' worker_id.
    nodename = f"{name or 'ftaas-' + uuid.uuid4().hex[:6]}@{socket.gethostname()}"
    info = registry.WorkerInfo.this_process(nodename, ",".join(classes))
    registry.beat(settings, info)
    registry.track_tasks(settings, info)
    start_sweeper(settings, info)
    if port := settings.worker_metrics_port if metrics_port is None else metrics_port:
        worker_metrics.serve(port, {"worker": info.id, "hostname": info.hostname, "gpu_classes": info.gpu_classes})
    app_for(settings).worker_main(
        [
            "worker",
            "--pool=solo",
            "--concurrency=1",
            "--without-gossip",
            "--without-mingle",
            f"--queues={','.join(queues + ['webhooks'])}",
            f"--hostname={nodename}",
            f"--loglevel={loglevel}",
        ]
    )


@click.command("up")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
def up_command(host: str, port: int) -> None:
    """Embedded default: migrate, prepare the demo base model, start one worker and the API (no servers)."""
    # The embedded default is a local trial: dev mode on purpose (the dashboard needs that with the dev secret).
    os.environ.setdefault("FTAAS_ENV", "dev")
    settings = get_settings()
    logs.configure_from_settings(settings)
    prepare(settings, public_url=f"http://{host}:{port}")
    cli = [sys.executable, "-m", "service.cli"]
    children = [subprocess.Popen([*cli, "worker"])]
    env = dict(os.environ)
    if not settings.inference_backends:  # serve the demo base's completions from an embedded inference server
        children.append(subprocess.Popen([*cli, "inference", "--base", DEMO_MODEL, "--host", "127.0.0.1"]))
        env["FTAAS_INFERENCE_BACKENDS"] = json.dumps({"*": f"http://127.0.0.1:{settings.inference_port}"})
    try:
        subprocess.run([*cli, "serve", "--host", host, "--port", str(port)], check=False, env=env)
    finally:
        for child in children:
            child.terminate()
        for child in children:
            try:
                child.wait(15)
            except subprocess.TimeoutExpired:
                child.kill()


@click.command("align")
@click.option("--source", default="smollm2", show_default=True, help="'smollm2' or a local HF model folder")
@click.option("--name", required=True, help="registry name of the pre-aligned base model")
@click.option(
    "--mode",
    type=click.Choice(["antibody", "sft"]),
    default="antibody",
    show_default=True,
    help="antibody = flatness + refusal loss (stage 1); sft = plain refusal SFT baseline",
)
@click.option("--steps", "max_steps", default=40, show_default=True, type=int)
@click.option("--batch-size", default=8, show_default=True, type=int)
@click.option("--eval-harmful", default=100, show_default=True, type=int, help="held-out harmful prompts for HS")
@click.option("--eval-benign", default=50, show_default=True, type=int, help="benign prompts for over-refusal")
@click.option("--gpu-class", default="default", show_default=True)
def align_command(
    source: str,
    name: str,
    mode: str,
    max_steps: int,
    batch_size: int,
    eval_harmful: int,
    eval_benign: int,
    gpu_class: str,
) -> None:
    """Pre-align a base model with Antibody's alignment stage, evaluate it, store and register it."""
    from worker.alignment.runner import run_and_publish  # torch

    spec = AlignmentSpec(
        name=name,
        source=source,
        mode=mode,
        max_steps=max_steps,
        batch_size=batch_size,
        eval_harmful=eval_harmful,
        eval_benign=eval_benign,
        gpu_class=gpu_class,
    )
    settings = get_settings()
    upgrade(settings.database_url)
    logs.configure_from_settings(settings)
    with settings_reporter(settings) as progress:
        row = run_and_publish(settings, spec, progress=progress)
    click.echo(json.dumps(row))


@click.command(
    "bench", context_settings={"ignore_unknown_options": True, "allow_extra_args": True, "help_option_names": []}
)
@click.argument("name")
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
def bench_command(name: str, args: tuple[str, ...]) -> None:
    """Run bench/NAME.py of this source tree with ARGS (`ftaas bench safety --quick`); it prints its JSON."""
    bench = Path(__file__).resolve().parents[1] / "bench"
    script = bench / f"{name}.py"
    if not script.is_file():
        known = ", ".join(sorted(p.stem for p in bench.glob("*.py") if p.stem not in ("common",))) or "none"
        raise click.ClickException(f"no bench '{name}' in {bench} (a source checkout has them: {known})")
    raise SystemExit(subprocess.call([sys.executable, str(script), *args]))
