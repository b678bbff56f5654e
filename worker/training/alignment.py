"""Antibody's alignment stage as a pure library: train a LoRA on (D_align, D_harm, D_refusal), merge it.

    from worker.training.alignment import AlignConfig, align, merge_adapter
    result = align(AlignConfig(base_model_dir=..., align_file=..., harm_file=..., output_dir=...))
    merge_adapter(base_model_dir, result.adapter_dir, out_dir)   # the provider-pre-aligned base model

The step itself is in ``flatness.py``. ``mode="sft"`` is the plain refusal-SFT baseline (L_align only), for
side-by-side comparisons. Data files use the fine-tuning chat format (``worker.alignment_datasets`` builds them).
Unlike the authors, who keep training the aligned LoRA in the fine-tuning stage, the aligned LoRA is merged into
the base weights and user jobs train a fresh LoRA on top (the multi-LoRA serving layout).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch

from worker.training.checkpoint import load_checkpoint, prune_checkpoints, save_checkpoint
from worker.training.config import StopReason, StopRequested
from worker.training.data import (
    ChatEncoder,
    ChatExample,
    collate,
    encode_file,
    epoch_order,
    load_tokenizer,
    pad_id_of,
    steps_per_epoch,
)
from worker.training.flatness import FlatnessParams, LambdaRule, antibody_step, count_passes, sft_step
from worker.training.model import load_base_model, pick_device, pick_dtype, trainable_lora
from worker.training.refusals import resolve_refusals

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


OnStep = Callable[[AlignStepMetrics], None]
OnCheckpoint = Callable[[int, Path], None]
ShouldStop = Callable[[], str | None]


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def derived_refusals(harm: Sequence[ChatExample], encoder: ChatEncoder, refusals: Sequence[str]) -> list[ChatExample]:
    """D_refusal as in the authors' code: D_harm's prompts, each with refusal ``i mod len(refusals)``."""
    out = []
    for i, ex in enumerate(harm):
        ids = encoder.refusal_ids(refusals[i % len(refusals)])
        out.append(ChatExample(ex.line, ex.prompt_ids, ids, [1] * len(ids), ids))
    return out


def batch_for(examples: Sequence[ChatExample], step: int, batch_size: int, seed: int) -> list[ChatExample]:
    """The step's batch of a data stream that cycles through seeded epochs (a pure function of step, so resume
    needs only the step counter). Streams with the same length and seed get the same indices, which pairs
    D_refusal with D_harm line by line."""
    epoch, index = divmod(step, steps_per_epoch(len(examples), batch_size))
    return [examples[i] for i in epoch_order(len(examples), batch_size, seed, epoch)[index]]


def _fingerprint(cfg: AlignConfig, data_sha: dict[str, str]) -> str:
    digest = hashlib.sha256(repr(sorted(data_sha.items())).encode())
    skip = {"output_dir", "resume_from", "checkpoint_every", "keep_checkpoints", "max_steps", "device"}
    for key, value in sorted(asdict(cfg).items()):
        if key not in skip and not key.endswith("_file") and key != "base_model_dir":
            digest.update(f"{key}={value!r}".encode())
    return digest.hexdigest()


def align(
    cfg: AlignConfig,
    on_step: OnStep | None = None,
    should_stop: ShouldStop | None = None,
    on_checkpoint: OnCheckpoint | None = None,
) -> AlignResult:
    """Train an alignment LoRA on ``cfg.base_model_dir``; returns the adapter dir and per-step metrics."""
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    torch.manual_seed(cfg.seed)
    refusals = resolve_refusals(cfg.refusals)
    tokenizer = load_tokenizer(Path(cfg.base_model_dir))
    pad_id = pad_id_of(tokenizer)

    def load(path: Path) -> list[ChatExample]:
        examples = encode_file(Path(path), tokenizer, cfg.max_seq_len, refusals)
        if not examples:
            raise ValueError(f"{path}: no examples")
        return examples

    files = {"align": cfg.align_file, "harm": cfg.harm_file, "refusal": cfg.refusal_file}
    data_sha = {k: _sha256(v) for k, v in files.items() if v is not None}
    d_align = load(cfg.align_file)
    d_harm = d_refusal = None
    if cfg.mode == "antibody":
        d_harm = load(cfg.harm_file)
        d_refusal = (
            load(cfg.refusal_file) if cfg.refusal_file else derived_refusals(d_harm, ChatEncoder(tokenizer), refusals)
        )
    elif cfg.mode != "sft":
        raise ValueError(f"unknown mode {cfg.mode!r}")
    batch_size = min(cfg.batch_size, len(d_align))
    per_epoch = steps_per_epoch(len(d_align), batch_size)
    total_steps = cfg.n_epochs * per_epoch
    if cfg.max_steps is not None:
        total_steps = min(total_steps, cfg.max_steps)

    model, params, optimizer = trainable_lora(
        Path(cfg.base_model_dir),
        device,
        dtype,
        rank=cfg.lora_rank,
        alpha=cfg.lora_alpha,
        dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        learning_rate=cfg.learning_rate,
        weight_decay=cfg.weight_decay,
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)  # constant, as the authors

    ckpt_root = Path(cfg.output_dir) / "checkpoints"
    fingerprint = _fingerprint(cfg, data_sha)
    hp = cfg.flatness()
    step, metrics, lambda_state = 0, [], (0.0, 0)
    if cfg.resume_from:
        state = load_checkpoint(Path(cfg.resume_from), model, optimizer, scheduler)
        if state["fingerprint"] != fingerprint:
            raise ValueError("checkpoint was written by a run with different data or hyperparameters")
        step, metrics, lambda_state = state["step"], state["metrics"], tuple(state["lambda_state"])

    def checkpoint() -> Path:
        state = {"step": step, "metrics": metrics, "lambda_state": list(lambda_state), "fingerprint": fingerprint}
        path = save_checkpoint(ckpt_root, step, model, optimizer, scheduler, state)
        if on_checkpoint:
            on_checkpoint(step, path)
        prune_checkpoints(ckpt_root, cfg.keep_checkpoints)
        return path

    last_ckpt: Path | None = None
    try:
        while step < total_steps:
            reason = should_stop() if should_stop else None
            if reason in ("cancel", "pause"):
                raise StopRequested(reason, step)  # type: ignore[arg-type]
            b_align = collate(batch_for(d_align, step, batch_size, cfg.seed), pad_id).to(device)
            optimizer.zero_grad(set_to_none=True)
            with count_passes(model) as passes:
                if d_harm is not None and d_refusal is not None:
                    bs = min(cfg.batch_size, len(d_harm), len(d_refusal))
                    b_harm = collate(batch_for(d_harm, step, bs, cfg.seed + 1), pad_id).to(device)
                    b_ref = collate(batch_for(d_refusal, step, bs, cfg.seed + 1), pad_id).to(device)
                    row, lambda_state = antibody_step(model, params, b_align, b_harm, b_ref, hp, lambda_state)
                else:
                    row = sft_step(model, b_align)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = float(scheduler.get_last_lr()[0])
            optimizer.step()
            scheduler.step()
            step += 1
            m = AlignStepMetrics(
                step=step,
                total_steps=total_steps,
                epoch=(step - 1) // per_epoch + 1,
                mode=cfg.mode,
                learning_rate=lr,
                forward_passes=passes.forward,
                backward_passes=passes.backward,
                **row,
            )
            metrics.append(m.row())
            if on_step:
                on_step(m)
            if (cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0) or step == total_steps:
                last_ckpt = checkpoint()
    except StopRequested as stop:
        if stop.reason == "pause" and (last_ckpt is None or last_ckpt.name != f"step-{step}"):
            last_ckpt = checkpoint()
        return AlignResult(None, step, total_steps, metrics, data_sha, stop.reason, last_ckpt)

    adapter_dir = Path(cfg.output_dir) / "adapter"
    model.save_pretrained(adapter_dir, safe_serialization=True)  # type: ignore[operator]
    return AlignResult(adapter_dir, step, total_steps, metrics, data_sha, None, last_ckpt)


def merge_adapter(base_model_dir: Path, adapter_dir: Path, out_dir: Path) -> Path:
    """Merge a LoRA into the base weights and save an HF folder (fp32 safetensors + tokenizer + config) at
    ``out_dir``, atomically (written next to it, then renamed). Returns ``out_dir``."""
    from peft import PeftModel

    base = load_base_model(Path(base_model_dir), torch.device("cpu"), torch.float32)
    merged = PeftModel.from_pretrained(base, Path(adapter_dir)).merge_and_unload()
    out_dir = Path(out_dir)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}-", dir=out_dir.parent))
    try:
        merged.save_pretrained(tmp, safe_serialization=True)
        load_tokenizer(Path(base_model_dir)).save_pretrained(tmp)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return out_dir
