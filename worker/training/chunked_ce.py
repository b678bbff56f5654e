"""Target log-probabilities without an [N, V] logits tensor: the lm_head projection and the log-softmax run
over ``chunk_tokens`` rows at a time.

A full-vocabulary logits tensor is the largest activation of a LoRA step on a large vocabulary (16×1024
targets × 128k vocab is 8 GB in fp32, twice that with its gradient). In training each chunk is wrapped in
activation checkpointing, so backward recomputes one chunk's logits at a time instead of keeping all of them:
the idea of Liger's fused linear cross-entropy (arXiv 2410.10989) in plain PyTorch, at the price of one more
projection per chunk in backward.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.checkpoint import checkpoint

from worker.training.antibody import target_logprobs


def _needs_grad(hidden: torch.Tensor, lm_head: nn.Module) -> bool:
    if not torch.is_grad_enabled():
        return False
    return hidden.requires_grad or any(p.requires_grad for p in lm_head.parameters())


def chunked_target_logprobs(
    hidden: torch.Tensor, lm_head: nn.Module, targets: torch.Tensor, chunk_tokens: int | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """``antibody.target_logprobs`` with at most ``chunk_tokens`` rows projected onto the vocabulary at once.

    hidden: [N, H]; targets: [N]. Returns (logp [N] float32, correct [N] bool), equal to the unchunked values.
    ``chunk_tokens`` None (or N ≤ chunk_tokens) is the unchunked call itself.
    """
    if chunk_tokens is None or hidden.shape[0] <= chunk_tokens:
        return target_logprobs(hidden, lm_head, targets)
    if chunk_tokens <= 0:
        raise ValueError("chunk_tokens must be positive")
    grad = _needs_grad(hidden, lm_head)
    logps, corrects = [], []
    for start in range(0, hidden.shape[0], chunk_tokens):
        rows, want = hidden[start : start + chunk_tokens], targets[start : start + chunk_tokens]
        if grad:
            # Non-reentrant checkpointing keeps only ``rows``; the chunk's logits are rebuilt in backward.
            logp, correct = checkpoint(target_logprobs, rows, lm_head, want, use_reentrant=False)
        else:
            logp, correct = target_logprobs(rows, lm_head, want)
        logps.append(logp)
        corrects.append(correct)
    return torch.cat(logps), torch.cat(corrects)
