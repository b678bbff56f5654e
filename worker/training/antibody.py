"""Antibody's fine-tuning-stage objective as small pure functions (ANTIBODY.md, "Stage 2"; arXiv 2603.00498).

    r_i  = log π(y_i|x_i) − log π(y_r,i|x_i)          (mean-token by default, as in the authors' code)
    w_i  = softmax_i(r_i / τ)                          (over the batch, no gradient)
    loss = Σ_i w_i Σ_t CE_i,t / Σ_i w_i N_i

A sample with no trained tokens (N_i = 0) has no r_i; it gets weight 0 and contributes nothing.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F


def target_logprobs(
    hidden: torch.Tensor, lm_head: torch.nn.Module, targets: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the targets, computing logits only for the rows that need them.

    hidden: [N, H] final hidden states of the positions that predict a target; targets: [N] token ids.
    Returns (logp [N] float32, correct [N] bool: argmax == target). The softmax normaliser is taken in fp32.
    """
    logits = lm_head(hidden).float()
    logp = -F.cross_entropy(logits, targets, reduction="none")
    correct = logits.argmax(-1) == targets
    return logp, correct


def per_sample_sum(values: torch.Tensor, sample_index: torch.Tensor, n_samples: int) -> torch.Tensor:
    """Sum flat per-token values into per-sample totals: values [N], sample_index [N] in [0, B) → [B]."""
    out = torch.zeros(n_samples, dtype=values.dtype, device=values.device)
    return out.index_add(0, sample_index, values)


def antibody_ratio(
    logp_response: torch.Tensor,
    n_response: torch.Tensor,
    logp_refusal: torch.Tensor,
    n_refusal: torch.Tensor,
    mode: Literal["mean_token", "sequence"] = "mean_token",
) -> torch.Tensor:
    """r_i, how much the model prefers the user's answer over the refusal. All inputs [B]; returns [B].

    ``mean_token`` divides each log-likelihood by its token count (the authors' code); ``sequence`` is the
    poster's sequence log-ratio. Samples with n_response = 0 get NaN (no answer to compare);
    ``antibody_weights`` drops them.
    """
    r = ratio_score(logp_response, n_response, mode) - ratio_score(logp_refusal, n_refusal, mode)
    return r.masked_fill(n_response == 0, float("nan"))


def ratio_score(logp: torch.Tensor, n: torch.Tensor, mode: Literal["mean_token", "sequence"]) -> torch.Tensor:
    """One side of r: a sequence log-likelihood [B] as the ratio ``mode`` counts it (per token, or summed)."""
    if mode == "sequence":
        return logp
    if mode == "mean_token":
        return logp / n.clamp(min=1)
    raise ValueError(f"unknown ratio mode {mode!r}")


def antibody_weights(r: torch.Tensor, tau: float = 1.0) -> torch.Tensor:
    """w = softmax(r / τ) over the batch, detached. r: [B] (NaN = sample without targets) → w: [B], sums to 1
    over the valid samples (all zeros if none is valid). τ → ∞ gives uniform weights."""
    if tau <= 0:
        raise ValueError("tau must be positive")
    r = r.detach()
    valid = ~torch.isnan(r)
    if not valid.any():
        return torch.zeros_like(r)
    logits = torch.where(valid, r / tau, torch.full_like(r, float("-inf")))
    return torch.softmax(logits, dim=0)


def weighted_nll(nll_sum: torch.Tensor, n_tokens: torch.Tensor, weights: torch.Tensor) -> torch.Tensor:
    """Token-normalised weighted NLL: Σ_i w_i·nll_sum_i / Σ_i w_i·N_i.

    nll_sum: [B] summed CE over each sample's trained tokens (carries the gradient); n_tokens: [B]; weights:
    [B] (detached). With uniform weights this is the usual token-mean cross-entropy of the batch. Returns a
    scalar; 0 (still connected to the graph) when no sample has a trained token.
    """
    weights = weights.detach().to(nll_sum.dtype)
    denom = (weights * n_tokens.to(nll_sum.dtype)).sum()
    numer = (weights * nll_sum).sum()
    if denom <= 0:
        return numer * 0.0
    return numer / denom


def weight_stats(weights: torch.Tensor, r: torch.Tensor) -> dict[str, float]:
    """Per-step logging of a batch's weights [B] and ratios [B]: min/mean/max, entropy (nats; log B = uniform)
    and the fraction of samples that prefer the refusal (r < 0). Samples without targets are left out."""
    valid = ~torch.isnan(r)
    if not valid.any():
        nan = float("nan")
        return {
            "weight_min": nan,
            "weight_mean": nan,
            "weight_max": nan,
            "weight_entropy": nan,
            "frac_r_negative": nan,
        }
    w = weights[valid].double()
    entropy = -(w * torch.log(w.clamp_min(1e-300))).sum()
    return {
        "weight_min": w.min().item(),
        "weight_mean": w.mean().item(),
        "weight_max": w.max().item(),
        "weight_entropy": entropy.item(),
        "frac_r_negative": (r[valid] < 0).double().mean().item(),
    }
