"""One optimizer step of Antibody's fine-tuning stage (ANTIBODY.md, "Stage 2"), and the per-line attenuation
record it feeds. The objective's math is in ``antibody.py``; ``trainer.py`` drives this step through ``loop.py``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

import worker.training.distributed as distributed
from worker.training.antibody import antibody_ratio, antibody_weights, weighted_nll
from worker.training.config import Ratio
from worker.training.data import Batch
from worker.training.model import sdpa_without_cudnn
from worker.training.packed_passes import packed_response_pass, packed_sample_passes
from worker.training.packing import PackedBatch
from worker.training.passes import ResponseOutput, refusal_logprobs_naive, refusal_logprobs_prefix_kv, response_pass


@dataclass
class StepStats:
    """Detached per-sample results of one batch (all [B]) after gradients have been accumulated."""

    nll_sum: torch.Tensor
    n_tokens: torch.Tensor
    n_correct: torch.Tensor
    r: torch.Tensor
    weights: torch.Tensor
    lines: list[int]


def sample_passes(
    model: nn.Module, batch: Batch | PackedBatch, refusal_pass: str, chunk_tokens: int | None = None
) -> tuple[ResponseOutput, torch.Tensor, torch.Tensor]:
    """(training forward, log π(y_r|x) [B], len(y_r) [B]) of one micro-batch, padded or packed."""
    if isinstance(batch, PackedBatch):
        return packed_sample_passes(model, batch, refusal_pass, chunk_tokens)
    prefix_kv = refusal_pass == "prefix_kv"
    out = response_pass(model, batch, keep_cache=prefix_kv, chunk_tokens=chunk_tokens)
    if prefix_kv:
        assert out.prompt_end_hidden is not None
        logp_ref = refusal_logprobs_prefix_kv(model, batch, out.cache, out.prompt_end_hidden, chunk_tokens)
    else:
        logp_ref = refusal_logprobs_naive(model, batch)
    out.cache = None  # the cropped cache is no longer needed; free it before backward
    return out, logp_ref, batch.refusal_mask.sum(1)


def batch_ratios(
    model: nn.Module,
    batch: Batch | PackedBatch,
    ratio: Ratio,
    refusal_pass: str,
    chunk_tokens: int | None,
    fixed_r: Mapping[int, float] | None,
) -> tuple[ResponseOutput, torch.Tensor]:
    """(training forward, r [B]) of one micro-batch: r from the current model, or looked up by line in
    ``fixed_r`` (``frozen_ratio.py``), which needs no refusal pass."""
    if fixed_r is None:
        out, logp_ref, n_refusal = sample_passes(model, batch, refusal_pass, chunk_tokens)
        return out, antibody_ratio(out.logp_response, out.n_tokens, logp_ref, n_refusal, ratio)
    if isinstance(batch, PackedBatch):
        out = packed_response_pass(model, batch, keep_cache=False, chunk_tokens=chunk_tokens)
    else:
        out = response_pass(model, batch, keep_cache=False, chunk_tokens=chunk_tokens)
    r = torch.tensor([fixed_r[line] for line in batch.lines], dtype=torch.float32, device=out.nll_sum.device)
    return out, r.masked_fill(out.n_tokens == 0, float("nan"))


def antibody_backward(
    model: nn.Module,
    micro_batches: Sequence[Batch | PackedBatch],
    tau: float,
    ratio: Ratio,
    refusal_pass: str,
    chunk_tokens: int | None = None,
    fixed_r: Mapping[int, float] | None = None,
    data_parallel: bool = False,
) -> StepStats:
    """Forward + backward of one optimizer step; leaves the gradient of the weighted NLL in ``.grad``.

    One micro-batch: ``weighted_nll(nll, N, softmax(r/τ)).backward()``. Several (gradient accumulation): the
    softmax must still span the whole batch, but its normaliser is only known after the last micro-batch.
    Since weighted_nll is invariant to rescaling the weights, we backward Σ e_i·nll_i with e_i = exp(r_i/τ −
    m) for a running max m (rescaling the accumulated gradient when m grows, as in an online softmax) and
    divide the gradient by Σ e_i·N_i at the end. Both give the same gradient. Micro-batches may be padded
    (``data.collate``) or packed (``packing.pack``); ``chunk_tokens`` bounds the rows projected onto the
    vocabulary at once (``chunked_ce.py``); ``fixed_r`` replaces the current model's r by per-line constants.
    ``data_parallel``: this rank's micro-batches are its share of a batch spread over the ranks of the default
    torch.distributed group, and the softmax spans all of it (``distributed.py``); every rank gets the same
    gradient, and the returned stats are the whole batch's, in rank order. On CUDA, attention never uses cuDNN's
    kernel, which builds a graph for each new width and batches change width every step (``sdpa_without_cudnn``).
    """
    with sdpa_without_cudnn(next(model.parameters()).device):
        if not data_parallel and len(micro_batches) == 1:
            out, r = batch_ratios(model, micro_batches[0], ratio, refusal_pass, chunk_tokens, fixed_r)
            weighted_nll(out.nll_sum, out.n_tokens, antibody_weights(r, tau)).backward()
            parts = [(out.nll_sum.detach(), out.n_tokens, out.n_correct, r)]
        else:
            parts, running_max, denom = _accumulate(
                model, micro_batches, tau, ratio, refusal_pass, chunk_tokens, fixed_r
            )
            params = [p for p in model.parameters() if p.requires_grad]
            if not data_parallel:
                scale = 1.0 / denom if denom > 0 else 1.0
                for p in params:
                    if p.grad is not None:
                        p.grad.mul_(scale)
            else:
                device = params[0].device if params else torch.device("cpu")
                distributed.sum_gradients(params, distributed.global_scale(running_max, denom, device))
    nll, n, correct, r = (torch.cat([p[i].cpu() for p in parts]) for i in range(4))
    lines = [line for b in micro_batches for line in b.lines]
    if data_parallel:
        ranks = distributed.gather([nll, n, correct, r, lines])
        nll, n, correct, r = (torch.cat([rank[i] for rank in ranks]) for i in range(4))
        lines = [line for rank in ranks for line in rank[4]]
    return StepStats(nll, n, correct, r, antibody_weights(r, tau), lines)


def _accumulate(
    model: nn.Module,
    micro_batches: Sequence[Batch | PackedBatch],
    tau: float,
    ratio: Ratio,
    refusal_pass: str,
    chunk_tokens: int | None,
    fixed_r: Mapping[int, float] | None,
) -> tuple[list[tuple[torch.Tensor, ...]], float | None, float]:
    """The online-softmax accumulation: leaves Σ e_i·∇nll_i in ``.grad`` (e_i = exp(r_i/τ − m) for the
    running max m) and returns (per-micro-batch stats, m or None if no sample had a trained token, Σ e_i·N_i)."""
    parts: list[tuple[torch.Tensor, ...]] = []
    running_max: float | None = None
    denom = 0.0
    for batch in micro_batches:
        out, r = batch_ratios(model, batch, ratio, refusal_pass, chunk_tokens, fixed_r)
        valid = ~torch.isnan(r).cpu()
        if valid.any():
            z = (r / tau).double().cpu()
            chunk_max = float(z[valid].max())
            if running_max is None or chunk_max > running_max:
                if running_max is not None:
                    shrink = math.exp(running_max - chunk_max)
                    denom *= shrink
                    for p in model.parameters():
                        if p.grad is not None:
                            p.grad.mul_(shrink)
                running_max = chunk_max
            e = torch.exp(z - running_max).masked_fill(~valid, 0.0)
            denom += float((e * out.n_tokens.cpu().double()).sum())
            (e.to(out.nll_sum) * out.nll_sum).sum().backward()
        parts.append((out.nll_sum.detach(), out.n_tokens, out.n_correct, r))
    return parts, running_max, denom


class Attenuation:
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
