"""Antibody's alignment stage as a pure library: train a LoRA on (D_align, D_harm, D_refusal), merge it.

    from worker.training.alignment import AlignConfig, align, merge_adapter
    result = align(AlignConfig(base_model_dir=..., align_file=..., harm_file=..., output_dir=...))
    merge_adapter(base_model_dir, result.adapter_dir, out_dir)   # the provider-pre-aligned base model

The configuration and result types are in ``alignment_config.py``, the step in ``alignment_step.py`` and the loop
around it in ``loop.py``. ``mode="sft"`` is the plain refusal-SFT baseline (L_align only), for side-by-side
comparisons. Data files use the fine-tuning chat format (``worker.datasets.splits`` builds them).
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
from typing import Any

import torch
from torch import nn

from worker.training.alignment_config import AlignConfig, AlignResult, AlignStepMetrics
from worker.training.alignment_step import antibody_alignment_step, count_passes, sft_step
from worker.training.data import (
    Batch,
    ChatEncoder,
    ChatExample,
    collate,
    encode_file,
    epoch_order,
    load_tokenizer,
    pad_id_of,
    steps_per_epoch,
)
from worker.training.loop import LoopSpec, OnCheckpoint, ShouldStop, run_loop
from worker.training.model import load_base_model, pick_device, pick_dtype, trainable_lora
from worker.training.refusals import resolve_refusals

OnStep = Callable[[AlignStepMetrics], None]


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


@dataclass
class AlignRun:
    """The alignment side of ``loop.Run``: D_align batches (with the paired D_harm and D_refusal batches in
    ``antibody`` mode), the step, optimizer, and the state a resume needs (metrics rows, λ state)."""

    cfg: AlignConfig
    model: nn.Module
    params: Sequence[nn.Parameter]
    optimizer: torch.optim.Optimizer
    d_align: list[ChatExample]
    d_harm: list[ChatExample] | None
    d_refusal: list[ChatExample] | None
    pad_id: int
    device: torch.device
    metrics: list[dict[str, Any]] = field(default_factory=list)
    lambda_state: tuple[float, int] = (0.0, 0)

    def __post_init__(self) -> None:
        cfg = self.cfg
        self.batch_size = min(cfg.batch_size, len(self.d_align))
        self.per_epoch = steps_per_epoch(len(self.d_align), self.batch_size)
        self.total_steps = cfg.n_epochs * self.per_epoch
        if cfg.max_steps is not None:
            self.total_steps = min(self.total_steps, cfg.max_steps)
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda _: 1.0)  # constant, as the authors
        self.hp = cfg.flatness()

    def state(self) -> dict[str, Any]:
        return {"metrics": self.metrics, "lambda_state": list(self.lambda_state)}

    def restore(self, state: dict[str, Any]) -> None:
        self.metrics, self.lambda_state = state["metrics"], tuple(state["lambda_state"])

    def _batch(self, examples: list[ChatExample], step: int, batch_size: int, seed: int) -> Batch:
        return collate(batch_for(examples, step, batch_size, seed), self.pad_id).to(self.device)

    def step(self, step: int) -> AlignStepMetrics:
        cfg = self.cfg
        b_align = self._batch(self.d_align, step, self.batch_size, cfg.seed)
        self.optimizer.zero_grad(set_to_none=True)
        with count_passes(self.model) as passes:
            if self.d_harm is not None and self.d_refusal is not None:
                bs = min(cfg.batch_size, len(self.d_harm), len(self.d_refusal))
                b_harm = self._batch(self.d_harm, step, bs, cfg.seed + 1)
                b_ref = self._batch(self.d_refusal, step, bs, cfg.seed + 1)
                row, self.lambda_state = antibody_alignment_step(
                    self.model, self.params, b_align, b_harm, b_ref, self.hp, self.lambda_state
                )
            else:
                row = sft_step(self.model, b_align)
        if cfg.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm)
        lr = float(self.scheduler.get_last_lr()[0])
        self.optimizer.step()
        self.scheduler.step()
        m = AlignStepMetrics(
            step=step + 1,
            total_steps=self.total_steps,
            epoch=step // self.per_epoch + 1,
            mode=cfg.mode,
            learning_rate=lr,
            forward_passes=passes.forward,
            backward_passes=passes.backward,
            **row,
        )
        self.metrics.append(m.row())
        return m


def _load_streams(
    cfg: AlignConfig, tokenizer: Any, refusals: Sequence[str]
) -> tuple[list[ChatExample], list[ChatExample] | None, list[ChatExample] | None]:
    """(D_align, D_harm, D_refusal); the last two are None in ``sft`` mode."""

    def load(path: Path) -> list[ChatExample]:
        examples = encode_file(Path(path), tokenizer, cfg.max_seq_len, refusals)
        if not examples:
            raise ValueError(f"{path}: no examples")
        return examples

    d_align = load(cfg.align_file)
    d_harm = d_refusal = None
    if cfg.mode == "antibody":
        d_harm = load(cfg.harm_file)
        d_refusal = (
            load(cfg.refusal_file) if cfg.refusal_file else derived_refusals(d_harm, ChatEncoder(tokenizer), refusals)
        )
    elif cfg.mode != "sft":
        raise ValueError(f"unknown mode {cfg.mode!r}")
    return d_align, d_harm, d_refusal


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
    files = {"align": cfg.align_file, "harm": cfg.harm_file, "refusal": cfg.refusal_file}
    data_sha = {k: _sha256(v) for k, v in files.items() if v is not None}
    d_align, d_harm, d_refusal = _load_streams(cfg, tokenizer, refusals)
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
    run = AlignRun(cfg, model, params, optimizer, d_align, d_harm, d_refusal, pad_id_of(tokenizer), device)
    spec = LoopSpec(
        model,
        optimizer,
        run.scheduler,
        Path(cfg.output_dir),
        run.total_steps,
        _fingerprint(cfg, data_sha),
        checkpoint_every=cfg.checkpoint_every,
        keep_checkpoints=cfg.keep_checkpoints,
    )
    done = run_loop(
        spec, run, resume_from=cfg.resume_from, on_step=on_step, on_checkpoint=on_checkpoint, should_stop=should_stop
    )
    return AlignResult(
        done.adapter_dir, done.steps, run.total_steps, run.metrics, data_sha, done.stopped, done.last_checkpoint
    )


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
