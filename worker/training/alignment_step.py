"""One step of Antibody's alignment stage (the flatness step), as small pure functions (ANTIBODY.md, "Stage 1";
arXiv 2603.00498).

    g_align = ∇L_align(θ)            g_h  = ∇L_harm(θ)
    θ_pert  = θ − ρ g_h/‖g_h‖        (LoRA tensors, in place)
    g_h'    = ∇L_harm(θ_pert)        g_ref = ∇L_refusal(θ_pert)        then θ is restored bit-exactly
    g_sharp = g_h − g_h'             (first-order ∇L_sharp, as in the authors' code)
    grad    = g_align + λ_t g_sharp + λ_refusal g_ref

Gradients stay per-parameter lists (``Grads``): ``p.grad`` tensors are moved out after each backward instead of
being flattened into one vector, and norms use ``torch._foreach_norm``. Four forward+backward passes, no copy of
the model: the only extra memory is a handful of LoRA-sized buffers (the authors deep-copy the whole model).

Why not one forward at θ_pert for both g_h' and g_ref: stacking the harm and refusal rows into one batch doubles
the activations held at once (the peak-memory goal is ≤ 1.05× an SFT step), and continuing the refusal from the
harm forward's prompt KV cache makes the second backward traverse the whole x‖y_h graph, which costs more than
the short x‖y_r pass it saves.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from worker.training.data import Batch
from worker.training.model import lm_parts
from worker.training.passes import response_pass

Grads = list[torch.Tensor]  # one tensor per trainable parameter, same shapes
LambdaRule = Literal["code", "paper"]


@dataclass
class FlatnessParams:
    """Hyperparameters of the flatness step (authors' defaults)."""

    rho: float = 0.1
    lambda_rule: LambdaRule = "code"
    eta: float = 5.0  # `code` rule: λ = max(0, η − cos)
    ema_momentum: float = 0.99  # `code` rule smoothing
    paper_a: float = 1.0  # `paper` rule: a_t, the required first-order decrease of L_sharp per unit step
    lambda_refusal: float = 0.05


def token_nll(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Token-mean NLL of the batch's trained response tokens (scalar, with grad): Σ CE / Σ N_i."""
    out = response_pass(model, batch, keep_cache=False)
    return out.nll_sum.sum() / out.n_tokens.sum().clamp(min=1)


def take_grads(params: Sequence[nn.Parameter]) -> Grads:
    """Move every ``p.grad`` out (no copy) and leave ``p.grad = None``; a parameter without a gradient
    contributes zeros."""
    out = []
    for p in params:
        out.append(p.grad if p.grad is not None else torch.zeros_like(p))
        p.grad = None
    return out


def dot(xs: Grads, ys: Grads) -> torch.Tensor:
    """Σ_p ⟨x_p, y_p⟩ over matching per-parameter tensors, in fp32 (0-d). Views, no flattened copies."""
    return torch.stack(
        [torch.dot(x.reshape(-1).float(), y.reshape(-1).float()) for x, y in zip(xs, ys, strict=True)]
    ).sum()


def norm(xs: Grads) -> torch.Tensor:
    """‖x‖₂ over all per-parameter tensors (0-d fp32), via one foreach kernel."""
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(xs)).float())


def cosine(xs: Grads, ys: Grads, x_norm: float | None = None, y_norm: float | None = None) -> float:
    """cos(x, y); 0 when either is zero. Norms may be passed in when already known."""
    nx = norm(xs).item() if x_norm is None else x_norm
    ny = norm(ys).item() if y_norm is None else y_norm
    return dot(xs, ys).item() / (nx * ny) if nx > 0 and ny > 0 else 0.0


@torch.no_grad()
def perturb_(params: Sequence[nn.Parameter], direction: Grads, rho: float, direction_norm: float) -> Grads:
    """θ ← θ − ρ·d/‖d‖ in place on the trainable (LoRA) tensors. Returns their previous values for
    ``restore_``: subtracting and adding back is not exact in floating point, a saved copy is (LoRA-sized)."""
    backup = [p.detach().clone() for p in params]
    if direction_norm > 0:
        torch._foreach_add_(list(params), direction, alpha=-rho / direction_norm)
    return backup


@torch.no_grad()
def restore_(params: Sequence[nn.Parameter], backup: Grads) -> None:
    """θ ← the values ``perturb_`` saved, bit for bit."""
    torch._foreach_copy_(list(params), backup)


def lambda_code(
    cos_align_sharp: float, eta: float, momentum: float, state: tuple[float, int]
) -> tuple[float, float, tuple[float, int]]:
    """The authors' code rule: raw = max(0, η − cos(g_align, g_sharp)), smoothed by an EMA with ``momentum``.

    ``state`` = (ema, t) with (0.0, 0) before the first step. The EMA is bias-corrected (ema / (1 − m^t)), so
    the first step uses the raw value instead of ramping up from 0 over ~1/(1−m) steps.
    Returns (λ_t, raw, new state).
    """
    raw = max(0.0, eta - cos_align_sharp)
    ema, t = state
    ema, t = momentum * ema + (1.0 - momentum) * raw, t + 1
    return ema / (1.0 - momentum**t), raw, (ema, t)


def lambda_paper(dot_sharp_align: float, sq_norm_sharp: float, a_t: float) -> float:
    """Theorem 4.1: the smallest λ ≥ 0 such that the update g_align + λ g_sharp decreases L_sharp at rate at
    least a_t, i.e. λ = max(0, (a_t − g_sharp·g_align) / ‖g_sharp‖²); 0 when g_sharp = 0."""
    if sq_norm_sharp <= 0 or not math.isfinite(sq_norm_sharp):
        return 0.0
    return max(0.0, (a_t - dot_sharp_align) / sq_norm_sharp)


@torch.no_grad()
def combine_(g_align: Grads, g_sharp: Grads, g_ref: Grads, lam: float, lam_ref: float) -> Grads:
    """g_align ← g_align + λ g_sharp + λ_ref g_ref, in place (two foreach kernels); returns g_align."""
    torch._foreach_add_(g_align, g_sharp, alpha=lam)
    torch._foreach_add_(g_align, g_ref, alpha=lam_ref)
    return g_align


def install_grads(params: Sequence[nn.Parameter], grads: Grads) -> None:
    for p, g in zip(params, grads, strict=True):
        p.grad = g


def antibody_alignment_step(
    model: nn.Module,
    params: Sequence[nn.Parameter],
    align: Batch,
    harm: Batch,
    refusal: Batch,
    hp: FlatnessParams,
    lambda_state: tuple[float, int],
) -> tuple[dict[str, float], tuple[float, int]]:
    """Four forward+backward passes; leaves g_align + λ_t g_sharp + λ_refusal g_ref in ``p.grad`` and θ
    unchanged. Returns (metrics, new λ state); the state only changes under the ``code`` rule."""
    loss_align = token_nll(model, align)
    loss_align.backward()
    g_align = take_grads(params)
    loss_harm = token_nll(model, harm)
    loss_harm.backward()
    g_h = take_grads(params)
    n_align, n_h = norm(g_align).item(), norm(g_h).item()
    cos_align_harm = cosine(g_align, g_h, n_align, n_h)

    backup = perturb_(params, g_h, hp.rho, n_h)
    try:
        loss_harm_pert = token_nll(model, harm)
        loss_harm_pert.backward()
        torch._foreach_sub_(g_h, take_grads(params))  # g_h becomes g_sharp; g_h' is freed here
        g_sharp = g_h
        loss_refusal = token_nll(model, refusal)
        loss_refusal.backward()
        g_ref = take_grads(params)
    finally:
        restore_(params, backup)
    del backup

    n_sharp, dot_sa = norm(g_sharp).item(), dot(g_sharp, g_align).item()
    cos_align_sharp = dot_sa / (n_align * n_sharp) if n_align > 0 and n_sharp > 0 else 0.0
    if hp.lambda_rule == "code":
        lam, lam_raw, lambda_state = lambda_code(cos_align_sharp, hp.eta, hp.ema_momentum, lambda_state)
    elif hp.lambda_rule == "paper":
        lam = lam_raw = lambda_paper(dot_sa, n_sharp**2, hp.paper_a)
    else:
        raise ValueError(f"unknown lambda_rule {hp.lambda_rule!r}")
    n_ref = norm(g_ref).item()
    metrics = {
        "loss_align": loss_align.item(),
        "loss_harm": loss_harm.item(),
        "loss_harm_pert": loss_harm_pert.item(),
        "loss_refusal": loss_refusal.item(),
        "lambda_t": lam,
        "lambda_raw": lam_raw,
        "cos_align_sharp": cos_align_sharp,
        "cos_align_harm": cos_align_harm,
        "cos_align_refusal": cosine(g_align, g_ref, n_align, n_ref),
        "grad_norm_align": n_align,
        "grad_norm_harm": n_h,
        "grad_norm_sharp": n_sharp,
        "grad_norm_refusal": n_ref,
    }
    install_grads(params, combine_(g_align, g_sharp, g_ref, lam, hp.lambda_refusal))
    return metrics, lambda_state


def sft_step(model: nn.Module, align: Batch) -> dict[str, float]:
    """The plain refusal-SFT baseline: one forward+backward of L_align; the gradient is left in ``p.grad``."""
    loss = token_nll(model, align)
    loss.backward()
    return {"loss_align": loss.item()}


@dataclass
class PassCount:
    forward: int = 0
    backward: int = 0


@contextmanager
def count_passes(model: nn.Module) -> Iterator[PassCount]:
    """Count forward passes through the decoder and backward passes through its output while inside."""
    decoder, _ = lm_parts(model)
    count = PassCount()

    def on_backward(grad: torch.Tensor) -> None:
        count.backward += 1

    def on_forward(module: nn.Module, args: object, output: object) -> None:
        count.forward += 1
        hidden = getattr(output, "last_hidden_state", None)
        if hidden is None and isinstance(output, tuple):
            hidden = output[0]
        if isinstance(hidden, torch.Tensor) and hidden.requires_grad:
            hidden.register_hook(on_backward)

    handle = decoder.register_forward_hook(on_forward)
    try:
        yield count
    finally:
        handle.remove()
