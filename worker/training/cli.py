"""``ftaas train``: run the training library directly on local files, no server (providers, debugging)."""

from __future__ import annotations

import csv
from pathlib import Path

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

import worker.training.distributed as distributed
from worker.training.config import StepMetrics, TrainConfig
from worker.training.trainer import train

_DIR = click.Path(file_okay=False, path_type=Path)
_FILE = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command("train")
@click.option(
    "--base",
    "base_model_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    required=True,
    help="Base model directory (HF format, safetensors).",
)
@click.option("--train", "train_file", type=_FILE, required=True, help="Training chat JSONL.")
@click.option("--validation", "validation_file", type=_FILE, default=None, help="Validation chat JSONL.")
@click.option("--out", "output_dir", type=_DIR, required=True, help="Output directory (adapter, checkpoints, reports).")
@click.option("--epochs", "n_epochs", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--batch-size", type=click.IntRange(min=1), default=8, show_default=True)
@click.option(
    "--micro-batch-size",
    type=click.IntRange(min=1),
    default=None,
    help="Samples per forward pass (gradient accumulation); weights still span the whole batch.",
)
@click.option("--lr-multiplier", "learning_rate_multiplier", type=float, default=1.0, show_default=True)
@click.option("--base-lr", "base_learning_rate", type=float, default=2e-4, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option("--lora-rank", type=click.IntRange(min=1), default=16, show_default=True)
@click.option("--lora-alpha", type=float, default=32.0, show_default=True)
@click.option("--lora-dropout", type=click.FloatRange(0.0, 1.0), default=0.0, show_default=True)
@click.option(
    "--target-modules",
    default="q_proj,k_proj,v_proj,o_proj",
    show_default=True,
    help="Comma-separated module names to adapt.",
)
@click.option("--max-seq-len", type=click.IntRange(min=8), default=1024, show_default=True)
@click.option(
    "--checkpoint-every",
    type=click.IntRange(min=0),
    default=0,
    show_default=True,
    help="Steps between checkpoints (0: only at the end).",
)
@click.option("--resume-from", type=click.Path(exists=True, file_okay=False, path_type=Path), default=None)
@click.option(
    "--tau",
    type=click.FloatRange(min=0.0, min_open=True),
    default=1.0,
    show_default=True,
    help="Softmax temperature of the Antibody weights.",
)
@click.option("--ratio", type=click.Choice(["mean_token", "sequence"]), default="mean_token", show_default=True)
@click.option("--refusals-file", type=_FILE, default=None, help="Refusal strings, one per line (default: built-in).")
@click.option(
    "--gradient-checkpointing",
    type=click.Choice(["auto", "on", "off"]),
    default="auto",
    show_default=True,
    callback=lambda _ctx, _param, value: {"on": True, "off": False}.get(value, value),
    help="Activation checkpointing; auto = on only when the largest micro-batch would not fit in free memory.",
)
@click.option(
    "--packing/--no-packing",
    default=True,
    show_default=True,
    help="Padding-free rows; --no-packing trains padded batches (the reference layout, same adapter, slower).",
)
@click.option("--device", default=None, help="cuda, cuda:1, cpu … (default: cuda if available).")
def train_command(target_modules: str, refusals_file: Path | None, **options) -> None:
    """Fine-tune a LoRA adapter with Antibody's weighted objective and write it under --out.

    On several devices: ``torchrun --nproc-per-node N -m service.cli train …``; every batch is spread over the
    ranks and Antibody's weights still span the whole batch."""
    refusals = None
    if refusals_file:
        refusals = [line.strip() for line in refusals_file.read_text(encoding="utf-8").splitlines() if line.strip()]
    cfg = TrainConfig(
        target_modules=tuple(m.strip() for m in target_modules.split(",") if m.strip()),
        refusals=refusals,
        **options,
    )
    console = Console(stderr=True)
    columns = (
        TextColumn("[bold]training"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task("train", total=None, info="loading model")

        def on_step(m: StepMetrics) -> None:
            progress.update(
                task,
                completed=m.step,
                total=m.total_steps,
                info=f"loss {m.train_loss:.3f} acc {m.train_mean_token_accuracy:.2f} "
                f"w [{m.weight_min:.3f}, {m.weight_max:.3f}]",
            )

        result = train(cfg, on_step=on_step)
    if not distributed.leads():
        return  # under torchrun, rank 0 reports for the job
    cfg.output_dir.mkdir(parents=True, exist_ok=True)
    metrics_csv = cfg.output_dir / "metrics.csv"
    if result.metrics:
        with open(metrics_csv, "w", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=list(result.metrics[0]))
            writer.writeheader()
            writer.writerows(result.metrics)
    click.echo(f"adapter: {result.adapter_dir}")
    click.echo(f"attenuation report: {result.attenuation_file}")
    click.echo(f"metrics: {metrics_csv}")
    click.echo(
        f"steps: {result.steps}  trained tokens: {result.trained_tokens}  "
        f"truncated examples: {result.truncated_examples}"
    )
