"""Plain dataclasses crossing the alignment library's boundary (``alignment.align``): what the worker passes in
and gets back, and one row of per-step metrics (with ``step_columns``, their compact form for a manifest)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from worker.training.alignment_step import FlatnessParams, LambdaRule
from worker.training.config import StopReason

AlignMode = Literal["antibody", "sft"]


@dataclass
class AlignConfig:
    """One alignment run. Paths are local. Defaults follow the authors (ANTIBODY.md) except the budget."""

    base_model_dir: Path
    align_file: Path  # D_align: harmful prompt → refusal (chat JSONL)
    harm_file: Path  # D_harm: harmful prompt → harmful response
    output_dir: Path
    refusal_file: Path | None = None  # D_refusal; None = harm_file's prompts with the refusal set
    mode: AlignMode = "antibody"
    n_epochs: int = 1  # over D_align; D_harm and D_refusal cycle alongside
    max_steps: int | None = None  # cap on the step budget (CPU runs)
    batch_size: int = 16
    learning_rate: float = 5e-4  # constant
    weight_decay: float = 0.1
    max_grad_norm: float | None = 1.0
    seed: int = 0
    lora_rank: int = 32
    lora_alpha: float = 4.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj")
    max_seq_len: int = 256
    rho: float = 0.1
    lambda_rule: LambdaRule = "code"
    eta: float = 5.0
    ema_momentum: float = 0.99
    paper_a: float = 1.0
    lambda_refusal: float = 0.05
    refusals: list[str] | None = None  # for a derived D_refusal
    checkpoint_every: int = 0  # steps; 0 = only at the end
    keep_checkpoints: int = 2
    resume_from: Path | None = None
    device: str | None = None
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"

    def flatness(self) -> FlatnessParams:
        return FlatnessParams(
            self.rho, self.lambda_rule, self.eta, self.ema_momentum, self.paper_a, self.lambda_refusal
        )


@dataclass
class AlignStepMetrics:
    """One optimizer step. Antibody-only fields are None in ``sft`` mode."""

    step: int
    total_steps: int
    epoch: int
    mode: str
    learning_rate: float
    forward_passes: int
    backward_passes: int
    loss_align: float
    loss_harm: float | None = None
    loss_harm_pert: float | None = None
    loss_refusal: float | None = None
    lambda_t: float | None = None
    lambda_raw: float | None = None
    cos_align_sharp: float | None = None
    cos_align_harm: float | None = None
    cos_align_refusal: float | None = None
    grad_norm_align: float | None = None
    grad_norm_harm: float | None = None
    grad_norm_sharp: float | None = None
    grad_norm_refusal: float | None = None

    def row(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class AlignResult:
    """What a finished (or stopped) run leaves. ``adapter_dir`` is None when stopped before the end."""

    adapter_dir: Path | None
    steps: int
    total_steps: int
    metrics: list[dict[str, Any]] = field(default_factory=list)
    data_sha256: dict[str, str] = field(default_factory=dict)  # of the input files, for the manifest
    stopped: StopReason | None = None
    last_checkpoint: Path | None = None


# What the alignment page charts: λ_t (and its value before the EMA), the objective's three losses with the harmful
# loss they derive from, and the cosines of g_align with the other gradients.
STEP_COLUMNS = (
    "step", "lambda_t", "lambda_raw", "loss_align", "loss_harm", "loss_sharp", "loss_refusal",
    "cos_align_sharp", "cos_align_harm", "cos_align_refusal",
)  # fmt: skip
MAX_STEP_POINTS = 500  # a chart is 480 px wide: more points than that draw nothing new, only grow the manifest


def _compact(value: Any) -> Any:
    """5 significant digits; NaN and ±inf become None (JSON, and Postgres's JSON column, have no NaN)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, int):
        return value
    return float(f"{value:.5g}") if math.isfinite(value) else None


def step_columns(rows: Sequence[Mapping[str, Any]], limit: int = MAX_STEP_POINTS) -> dict[str, list[Any]]:
    """``AlignStepMetrics.row()`` rows as columns (``{"step": [...], "lambda_t": [...], ...}``), rounded.

    Longer runs are downsampled evenly to ``limit`` rows, always keeping the first and the last step.
    ``loss_sharp`` = L_harm(θ) − L_harm(θ_pert), the objective's L_sharp, taken before rounding (two rounded losses
    would leave its small difference with two digits). A column with no value at all (``sft`` mode's λ) is left out.
    """
    if len(rows) > limit > 1:
        rows = [rows[round(i * (len(rows) - 1) / (limit - 1))] for i in range(limit)]
    columns: dict[str, list[Any]] = {}
    for key in STEP_COLUMNS:
        if key == "loss_sharp":
            values = [_sharp(r.get("loss_harm"), r.get("loss_harm_pert")) for r in rows]
        else:
            values = [_compact(r.get(key)) for r in rows]
        if any(v is not None for v in values):
            columns[key] = values
    return columns


def _sharp(harm: Any, harm_pert: Any) -> float | None:
    ok = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (harm, harm_pert))
    return _compact(harm - harm_pert) if ok else None
