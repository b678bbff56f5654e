"""The training loop: a plain PyTorch loop, readable top to bottom.

load data → build model + LoRA → (resume) → for each step: stop? → batch → Antibody step → optimizer → log →
validate → checkpoint → final adapter + attenuation report.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from worker.training.antibody import antibody_ratio, antibody_weights, weight_stats, weighted_nll
from worker.training.checkpoint import load_checkpoint, prune_checkpoints, save_checkpoint
from worker.training.config import StepMetrics, StopReason, StopRequested, TrainConfig, TrainResult
from worker.training.data import (
    Batch,
    ChatExample,
    collate,
    encode_file,
    epoch_order,
    load_tokenizer,
    pad_id_of,
    steps_per_epoch,
)
from worker.training.model import load_base_model, pick_device, pick_dtype, trainable_lora
from worker.training.passes import refusal_logprobs_naive, refusal_logprobs_prefix_kv, response_pass
from worker.training.refusals import resolve_refusals

OnStep = Callable[[StepMetrics], None]
OnCheckpoint = Callable[[int, Path], None]
ShouldStop = Callable[[], str | None]


@dataclass
class StepStats:
    """Detached per-sample results of one batch (all [B]) after gradients have been accumulated."""

    nll_sum: torch.Tensor
    n_tokens: torch.Tensor
    n_correct: torch.Tensor
    r: torch.Tensor
    weights: torch.Tensor
    lines: list[int]


def antibody_backward(
    model: nn.Module, micro_batches: Sequence[Batch], tau: float, ratio: str, refusal_pass: str
) -> StepStats:
    """Forward + backward of one optimizer step; leaves the gradient of the weighted NLL in ``.grad``.

    One micro-batch: ``weighted_nll(nll, N, softmax(r/τ)).backward()``. Several (gradient accumulation): the
    softmax must still span the whole batch, but its normaliser is only known after the last micro-batch.
    Since weighted_nll is invariant to rescaling the weights, we backward Σ e_i·nll_i with e_i = exp(r_i/τ −
    m) for a running max m (rescaling the accumulated gradient when m grows, as in an online softmax) and
    divide the gradient by Σ e_i·N_i at the end. Both give the same gradient.
    """
    single = len(micro_batches) == 1
    parts: list[tuple[torch.Tensor, ...]] = []
    running_max: torch.Tensor | None = None
    denom = torch.zeros((), dtype=torch.float64)
    for batch in micro_batches:
        prefix_kv = refusal_pass == "prefix_kv"
        out = response_pass(model, batch, keep_cache=prefix_kv)
        if prefix_kv:
            logp_ref = refusal_logprobs_prefix_kv(model, batch, out.cache, out.prompt_end_hidden)
        else:
            logp_ref = refusal_logprobs_naive(model, batch)
        out.cache = None  # the cropped cache is no longer needed; free it before backward
        r = antibody_ratio(out.logp_response, out.n_tokens, logp_ref, batch.refusal_mask.sum(1), ratio)
        valid = ~torch.isnan(r)
        if single:
            loss = weighted_nll(out.nll_sum, out.n_tokens, antibody_weights(r, tau))
            loss.backward()
        elif valid.any():
            z = (r / tau).double().cpu()
            chunk_max = z[valid.cpu()].max()
            if running_max is None or chunk_max > running_max:
                if running_max is not None:
                    shrink = math.exp(running_max - chunk_max)
                    denom *= shrink
                    for p in model.parameters():
                        if p.grad is not None:
                            p.grad.mul_(shrink)
                running_max = chunk_max
            e = torch.exp(z - running_max).masked_fill(~valid.cpu(), 0.0)
            denom += (e * out.n_tokens.cpu().double()).sum()
            (e.to(out.nll_sum) * out.nll_sum).sum().backward()
        parts.append((out.nll_sum.detach(), out.n_tokens, out.n_correct, r))
    if not single and denom > 0:
        for p in model.parameters():
            if p.grad is not None:
                p.grad.div_(float(denom))
    nll, n, correct, r = (torch.cat([p[i].cpu() for p in parts]) for i in range(4))
    lines = [line for b in micro_batches for line in b.lines]
    return StepStats(nll, n, correct, r, antibody_weights(r, tau), lines)


def make_scheduler(optimizer: torch.optim.Optimizer, cfg: TrainConfig, total_steps: int):
    """Linear warmup over ``warmup_ratio`` of the steps, then linear/cosine decay (not to zero) or
    constant."""
    warmup = round(cfg.warmup_ratio * total_steps)

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        if cfg.lr_scheduler == "linear":
            return 1.0 - progress
        if cfg.lr_scheduler == "cosine":
            return 0.5 * (1.0 + math.cos(math.pi * progress))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@torch.no_grad()
def evaluate(model: nn.Module, examples: Sequence[ChatExample], batch_size: int, pad_id: int, device) -> dict:
    """Unweighted token-mean loss and accuracy on held-out examples (OpenAI's valid_loss semantics)."""
    was_training = model.training
    model.eval()
    nll = n = correct = 0.0
    for i in range(0, len(examples), batch_size):
        out = response_pass(model, collate(examples[i : i + batch_size], pad_id).to(device), keep_cache=False)
        nll += out.nll_sum.sum().item()
        n += out.n_tokens.sum().item()
        correct += out.n_correct.sum().item()
    model.train(was_training)
    return {"valid_loss": nll / n if n else None, "valid_mean_token_accuracy": correct / n if n else None}


def _fingerprint(cfg: TrainConfig) -> str:
    """What must not change between a run and its resume (same data, same batches, same objective)."""
    digest = hashlib.sha256(Path(cfg.train_file).read_bytes())
    for value in (
        cfg.batch_size,
        cfg.micro_batch_size,
        cfg.seed,
        cfg.n_epochs,
        cfg.max_seq_len,
        cfg.lora_rank,
        cfg.tau,
        cfg.ratio,
        tuple(cfg.target_modules),
        tuple(cfg.refusals or ()),
    ):
        digest.update(repr(value).encode())
    return digest.hexdigest()


class _Attenuation:
    """Per source line: Σ weight, min weight, times seen, Σ r (the attenuation report and the dashboard)."""

    def __init__(self, rows: dict[str, list[float]] | None = None):
        self.rows: dict[str, list[float]] = rows or {}

    def add(self, stats: StepStats) -> None:
        for line, w, r in zip(stats.lines, stats.weights.tolist(), stats.r.tolist(), strict=True):
            if math.isnan(r):
                continue
            row = self.rows.setdefault(str(line), [0.0, math.inf, 0, 0.0])
            row[0] += w
            row[1] = min(row[1], w)
            row[2] += 1
            row[3] += r

    def report(self) -> list[dict[str, float | int]]:
        return [
            {"line": int(k), "mean_weight": s / c, "min_weight": m, "times_seen": int(c), "mean_r": rs / c}
            for k, (s, m, c, rs) in sorted(self.rows.items(), key=lambda kv: int(kv[0]))
        ]


def train(
    cfg: TrainConfig,
    on_step: OnStep | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    should_stop: ShouldStop | None = None,
) -> TrainResult:
    """Fine-tune a fresh LoRA on ``cfg.base_model_dir`` with Antibody's weighted objective (always on)."""
    device = pick_device(cfg.device)
    dtype = pick_dtype(cfg.dtype, device)
    torch.manual_seed(cfg.seed)
    refusals = resolve_refusals(cfg.refusals)
    tokenizer = load_tokenizer(Path(cfg.base_model_dir))
    pad_id = pad_id_of(tokenizer)
    examples = encode_file(Path(cfg.train_file), tokenizer, cfg.max_seq_len, refusals)
    if not examples:
        raise ValueError(f"{cfg.train_file}: no training examples")
    valid = []
    if cfg.validation_file:
        valid = encode_file(Path(cfg.validation_file), tokenizer, cfg.max_seq_len, refusals)
        valid = valid[: cfg.max_valid_examples]
    batch_size = min(cfg.batch_size, len(examples))
    micro = min(cfg.micro_batch_size or batch_size, batch_size)
    per_epoch = steps_per_epoch(len(examples), batch_size)
    total_steps = cfg.n_epochs * per_epoch
    refusal_pass = "naive" if cfg.gradient_checkpointing else cfg.refusal_pass  # HF drops the cache when
    # checkpointing activations, so the prefix-KV pass has no cache to reuse there.

    model, params, optimizer = trainable_lora(
        Path(cfg.base_model_dir),
        device,
        dtype,
        rank=cfg.lora_rank,
        alpha=cfg.lora_alpha,
        dropout=cfg.lora_dropout,
        target_modules=cfg.target_modules,
        learning_rate=cfg.base_learning_rate * cfg.learning_rate_multiplier,
        weight_decay=cfg.weight_decay,
        gradient_checkpointing=cfg.gradient_checkpointing,
    )
    scheduler = make_scheduler(optimizer, cfg, total_steps)

    output_dir = Path(cfg.output_dir)
    ckpt_root = output_dir / "checkpoints"
    fingerprint = _fingerprint(cfg)
    step, trained_tokens, metrics = 0, 0, []
    attenuation = _Attenuation()
    if cfg.resume_from:
        state = load_checkpoint(Path(cfg.resume_from), model, optimizer, scheduler)
        if state["fingerprint"] != fingerprint:
            raise ValueError("checkpoint was written by a run with different data or hyperparameters")
        step, trained_tokens, metrics = state["step"], state["trained_tokens"], state["metrics"]
        attenuation = _Attenuation(state["attenuation"])

    def checkpoint() -> Path:
        state = {
            "step": step,
            "trained_tokens": trained_tokens,
            "metrics": metrics,
            "attenuation": attenuation.rows,
            "fingerprint": fingerprint,
        }
        path = save_checkpoint(ckpt_root, step, model, optimizer, scheduler, state)
        if on_checkpoint:
            on_checkpoint(step, path)
        prune_checkpoints(ckpt_root, cfg.keep_checkpoints)
        return path

    def result(adapter_dir: Path | None, stopped: StopReason | None, last: Path | None, report: Path | None):
        return TrainResult(
            adapter_dir=adapter_dir,
            steps=step,
            total_steps=total_steps,
            trained_tokens=trained_tokens,
            metrics=metrics,
            attenuation=attenuation.report(),
            truncated_examples=sum(e.truncated for e in examples),
            stopped=stopped,
            last_checkpoint=last,
            attenuation_file=report,
        )

    last_ckpt: Path | None = None
    order: list[list[int]] = []
    try:
        while step < total_steps:
            reason = should_stop() if should_stop else None
            if reason in ("cancel", "pause"):
                raise StopRequested(reason, step)  # type: ignore[arg-type]
            epoch, index = divmod(step, per_epoch)
            if index == 0 or not order:
                order = epoch_order(len(examples), batch_size, cfg.seed, epoch)
            chosen = [examples[i] for i in order[index]]
            micro_batches = [collate(chosen[i : i + micro], pad_id).to(device) for i in range(0, len(chosen), micro)]

            optimizer.zero_grad(set_to_none=True)
            stats = antibody_backward(model, micro_batches, cfg.tau, cfg.ratio, refusal_pass)
            if cfg.max_grad_norm:
                torch.nn.utils.clip_grad_norm_(params, cfg.max_grad_norm)
            lr = scheduler.get_last_lr()[0]
            optimizer.step()
            scheduler.step()
            step += 1
            trained_tokens += sum(e.n_tokens for e in chosen)
            attenuation.add(stats)

            n = stats.n_tokens.sum().item()
            row = StepMetrics(
                step=step,
                total_steps=total_steps,
                epoch=epoch + 1,
                train_loss=weighted_nll(stats.nll_sum, stats.n_tokens, stats.weights).item(),
                train_loss_unweighted=stats.nll_sum.sum().item() / n if n else float("nan"),
                train_mean_token_accuracy=stats.n_correct.sum().item() / n if n else float("nan"),
                learning_rate=lr,
                trained_tokens=trained_tokens,
                **weight_stats(stats.weights, stats.r),
            )
            ckpt_due = cfg.checkpoint_every > 0 and step % cfg.checkpoint_every == 0
            eval_due = (step % cfg.eval_every == 0) if cfg.eval_every > 0 else ckpt_due
            if valid and (eval_due or step == total_steps):
                scores = evaluate(model, valid, micro, pad_id, device)
                row.valid_loss, row.valid_mean_token_accuracy = (
                    scores["valid_loss"],
                    scores["valid_mean_token_accuracy"],
                )
            metrics.append(row.row())
            if on_step:
                on_step(row)
            if ckpt_due or step == total_steps:
                last_ckpt = checkpoint()
    except StopRequested as stop:
        if stop.reason == "pause" and (last_ckpt is None or last_ckpt.name != f"step-{step}"):
            last_ckpt = checkpoint()
        return result(None, stop.reason, last_ckpt, None)

    adapter_dir = output_dir / "adapter"
    model.save_pretrained(adapter_dir, safe_serialization=True)
    report = output_dir / "attenuation.json"
    report.write_text(json.dumps(attenuation.report(), indent=1))
    return result(adapter_dir, None, last_ckpt, report)


def load_adapter_model(base_model_dir: Path, adapter_dir: Path, device: str | None = None) -> Any:
    """The base model with a trained adapter applied (evaluation and tests)."""
    from peft import PeftModel

    dev = pick_device(device)
    base = load_base_model(Path(base_model_dir), dev, pick_dtype("auto", dev))
    return PeftModel.from_pretrained(base, adapter_dir).eval()
