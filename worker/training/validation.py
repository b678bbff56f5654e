"""Validation: OpenAI's ``valid_loss`` and ``valid_mean_token_accuracy`` on held-out examples, padded or packed."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from worker.training.data import ChatExample, collate
from worker.training.packed_passes import packed_response_pass
from worker.training.packing import pack
from worker.training.passes import response_pass


@torch.no_grad()
def evaluate(
    model: nn.Module,
    examples: Sequence[ChatExample],
    batch_size: int,
    pad_id: int,
    device: torch.device,
    packing: bool = False,
    row_tokens: int | None = None,
) -> dict:
    """Unweighted token-mean loss and accuracy on held-out examples (OpenAI's valid_loss semantics). ``packing``
    evaluates each batch as packed rows (``packing.py``): the same per-sample sums without the padding."""
    was_training = model.training
    model.eval()
    nll = n = correct = 0.0
    for i in range(0, len(examples), batch_size):
        chunk = examples[i : i + batch_size]
        if packing:
            out = packed_response_pass(model, pack(chunk, pad_id, row_tokens=row_tokens).to(device), keep_cache=False)
        else:
            out = response_pass(model, collate(chunk, pad_id).to(device), keep_cache=False)
        nll += out.nll_sum.sum().item()
        n += out.n_tokens.sum().item()
        correct += out.n_correct.sum().item()
    model.train(was_training)
    return {"valid_loss": nll / n if n else None, "valid_mean_token_accuracy": correct / n if n else None}
