"""Plain dataclasses crossing the alignment library's boundary (``alignment.align``): what the worker passes in
and gets back, and one row of per-step metrics."""

from __future__ import annotations

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
