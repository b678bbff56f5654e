"""Plain dataclasses crossing the library boundary: what the worker passes in and gets back."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

Ratio = Literal["mean_token", "sequence"]
StopReason = Literal["cancel", "pause"]


class StopRequested(Exception):
    """Raised inside the loop when ``should_stop`` asks to cancel or pause; ``train`` turns it into a
    result."""

    def __init__(self, reason: StopReason, step: int):
        super().__init__(f"stop requested ({reason}) at step {step}")
        self.reason = reason
        self.step = step


@dataclass
class TrainConfig:
    """One fine-tuning job. Paths are local; the worker downloads and uploads around the library."""

    base_model_dir: Path
    train_file: Path
    output_dir: Path
    validation_file: Path | None = None
    n_epochs: int = 3
    batch_size: int = 8
    # Samples per forward/backward. None = the whole batch. Antibody's softmax still spans the whole batch.
    micro_batch_size: int | None = None
    learning_rate_multiplier: float = 1.0
    base_learning_rate: float = 2e-4  # per base model; the service's model registry may override it
    seed: int = 0
    lora_rank: int = 16
    lora_alpha: float = 32.0
    lora_dropout: float = 0.0
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj")
    max_seq_len: int = 1024
    weight_decay: float = 0.1
    warmup_ratio: float = 0.1
    lr_scheduler: Literal["linear", "cosine", "constant"] = "linear"
    max_grad_norm: float | None = 1.0
    checkpoint_every: int = 0  # steps; 0 = only at the end
    keep_checkpoints: int = 2  # newest N kept on local disk; the worker uploads each one as it appears
    eval_every: int = 0  # steps between validation passes; 0 = at checkpoints and at the end
    max_valid_examples: int = 256
    resume_from: Path | None = None
    # A saved PEFT adapter to continue training (fine-tuning a fine-tuned model); None = a fresh LoRA. Its own
    # rank, alpha, dropout and target modules win over the lora_* fields above.
    init_adapter_dir: Path | None = None
    tau: float = 1.0
    ratio: Ratio = "mean_token"
    refusals: list[str] | None = None
    # The provider's (harmful prompt, refusal) chats, trained with every job after the customer's lines so that
    # benign fine-tuning does not erode the base's refusals (SafeInstr / Lisa style). Numbered on from the
    # customer's last line, weighted by Antibody like any line, and left out of the attenuation report and of
    # trained_tokens (the customer's bill).
    safety_mix_file: Path | None = None
    # Who scores r_i: the model being trained ("current", the paper) or the frozen aligned base, once per line
    # before the first step ("base", ``frozen_ratio.py``); and which refusal it compares against there. "none"
    # is plain SFT, the benches' baseline: r = 0 for every line, so uniform weights and no refusal pass. The
    # service never sets it: every job is Antibody.
    ratio_model: Literal["current", "base", "none"] = "current"
    refusal_reference: Literal["assigned", "best", "logsumexp"] = "assigned"
    # "prefix_kv" reuses the training forward's KV cache; "naive" is the reference second forward over x‖y_r.
    refusal_pass: Literal["prefix_kv", "naive"] = "prefix_kv"
    # True, False, or "auto": on only when the largest micro-batch would not fit the device's free memory
    # (``memory_plan.py``). It changes memory and speed, never what is trained.
    gradient_checkpointing: bool | Literal["auto"] = "auto"
    # Pack each micro-batch's samples into rows without padding (block-diagonal attention, ``packing.py``).
    # Same per-sample sums, weights and gradients as the padded batch, up to float rounding, and faster: 2.2x
    # on CPU (bench/results/throughput-cpu.json), 2.0x on varied lines and 1.65x at 8x512 on an H200
    # (throughput-nvidia-h200.json). False is the padded reference layout.
    packing: bool = True
    packing_row_tokens: int | None = None  # packed row width; None = the micro-batch's longest sample
    # Project at most this many target rows onto the vocabulary at once (``chunked_ce.py``); None = all.
    loss_chunk_tokens: int | None = None
    device: str | None = None  # None = cuda if available, else cpu
    dtype: Literal["auto", "float32", "bfloat16"] = "auto"  # auto = bf16 on CUDA, fp32 on CPU


@dataclass
class StepMetrics:
    """One optimizer step. ``valid_*`` are None on steps without a validation pass."""

    step: int
    total_steps: int
    epoch: int
    train_loss: float  # Antibody-weighted NLL (the objective that was differentiated)
    train_loss_unweighted: float  # plain token-mean NLL, comparable with an SFT run
    train_mean_token_accuracy: float
    learning_rate: float
    weight_min: float
    weight_mean: float
    weight_max: float
    weight_entropy: float  # nats; log(batch) means uniform weights
    frac_r_negative: float
    trained_tokens: int  # cumulative
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = None

    def row(self) -> dict[str, float | int | None]:
        """The row the results CSV is written from."""
        return {
            "step": self.step,
            "train_loss": self.train_loss,
            "train_loss_unweighted": self.train_loss_unweighted,
            "train_mean_token_accuracy": self.train_mean_token_accuracy,
            "valid_loss": self.valid_loss,
            "valid_mean_token_accuracy": self.valid_mean_token_accuracy,
            "learning_rate": self.learning_rate,
            "weight_min": self.weight_min,
            "weight_mean": self.weight_mean,
            "weight_max": self.weight_max,
            "weight_entropy": self.weight_entropy,
            "frac_r_negative": self.frac_r_negative,
        }


@dataclass
class TrainResult:
    """What a finished (or stopped) run leaves behind. ``adapter_dir`` is None when stopped before the end."""

    adapter_dir: Path | None
    steps: int
    total_steps: int
    trained_tokens: int
    metrics: list[dict[str, float | int | None]] = field(default_factory=list)
    attenuation: list[dict[str, float | int]] = field(default_factory=list)
    truncated_examples: int = 0
    stopped: StopReason | None = None
    last_checkpoint: Path | None = None
    attenuation_file: Path | None = None
