"""Antibody's ratio r_i scored once by the frozen aligned base instead of by the model being trained.

The paper scores r_i = log π_θt(y_i|x_i) − log π_θt(y_r|x_i) with the current weights θ_t, so a harmful line
raises its own weight as training learns it: its log-likelihood rises and the refusal's falls. Scored by the
aligned base (every adapter off), r_i is a constant per line, computed before the first step; the step then
needs no refusal pass at all. With a constant r the reference can also afford the whole refusal set:

- ``assigned``: the line's own refusal string (as in the paper);
- ``best``: the refusal the base finds most likely for this prompt (max over the set);
- ``logsumexp``: a soft maximum over the set. Softmax weights are shift-invariant, so log-sum-exp and
  log-mean-exp give the same weights.

Scores follow ``ratio``: mean-token log-probabilities, or sequence sums.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import replace
from typing import Literal

import torch
from torch import nn

from worker.training.antibody import ratio_score
from worker.training.config import Ratio
from worker.training.data import ChatExample, collate
from worker.training.passes import refusal_logprobs_naive, response_pass

Reference = Literal["assigned", "best", "logsumexp"]


@contextlib.contextmanager
def adapters_off(model: nn.Module) -> Iterator[None]:
    """The base model's own weights for the duration (a PEFT model's adapters disabled; a plain model as is)."""
    disable = getattr(model, "disable_adapter", None)
    with disable() if callable(disable) else contextlib.nullcontext():
        yield


@torch.no_grad()
def frozen_ratios(
    model: nn.Module,
    examples: Sequence[ChatExample],
    refusal_tokens: Sequence[Sequence[int]],
    ratio: Ratio,
    reference: Reference,
    batch_size: int,
    pad_id: int,
    device: torch.device,
) -> dict[int, float]:
    """r_i by source line, under the base's weights; NaN for a line without trained tokens (weight 0).

    ``refusal_tokens`` is the tokenised refusal set (``ChatEncoder.refusal_ids``); ``assigned`` uses each
    example's own ``refusal_ids`` instead. Costs one forward per example, plus one per refusal string for
    ``best`` and ``logsumexp``, once per job.
    """
    if reference not in ("assigned", "best", "logsumexp"):
        raise ValueError(f"unknown refusal reference {reference!r}")
    was_training = model.training
    model.eval()
    out: dict[int, float] = {}
    with adapters_off(model):
        for i in range(0, len(examples), batch_size):
            chunk = list(examples[i : i + batch_size])
            batch = collate(chunk, pad_id).to(device)
            resp = response_pass(model, batch, keep_cache=False)
            if reference == "assigned":
                refs = [batch]
            else:
                refs = [
                    collate([replace(e, refusal_ids=list(t)) for e in chunk], pad_id).to(device) for t in refusal_tokens
                ]
            scores = torch.stack(
                [ratio_score(refusal_logprobs_naive(model, b), b.refusal_mask.sum(1), ratio) for b in refs]
            )  # [K, B]
            ref = scores.max(0).values if reference == "best" else scores.logsumexp(0)
            r = ratio_score(resp.logp_response, resp.n_tokens, ratio) - ref
            r = r.masked_fill(resp.n_tokens == 0, float("nan"))
            out.update(zip(batch.lines, r.float().cpu().tolist(), strict=True))
    model.train(was_training)
    return out
