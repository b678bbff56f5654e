"""The forward passes of one Antibody step: the training forward, and log π(y_r|x) two ways.

``refusal_logprobs_prefix_kv`` is what training uses: it continues the training forward's KV cache, cropped to
the common prompt end P, with the refusal tokens only. ``refusal_logprobs_naive`` is the reference (a second
full forward over x‖y_r through the stock HF head); tests and the benchmark hold the two together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from worker.training.antibody import per_sample_sum
from worker.training.chunked_ce import chunked_target_logprobs
from worker.training.data import Batch, positions_from_mask
from worker.training.model import crop_cache, decoder_forward, lm_parts


@dataclass
class ResponseOutput:
    """Per-sample results of the training forward. All [B]; only ``nll_sum`` carries a gradient."""

    nll_sum: torch.Tensor
    n_tokens: torch.Tensor
    n_correct: torch.Tensor
    logp_response: torch.Tensor  # detached: = −nll_sum, for free
    prompt_end_hidden: torch.Tensor | None  # [B, H] detached hidden state at P−1: it predicts y_r's first token
    cache: Any  # the KV cache over x‖y, or None


def response_pass(model: nn.Module, batch: Batch, keep_cache: bool, chunk_tokens: int | None = None) -> ResponseOutput:
    """Training forward over x‖y. Projects onto the vocabulary only the rows that predict a trained token,
    instead of the [B, T, V] logits a stock forward materialises, ``chunk_tokens`` rows at a time if given."""
    decoder, head = lm_parts(model)
    hidden, cache = decoder_forward(
        decoder, batch.input_ids, batch.attention_mask, batch.position_ids, use_cache=keep_cache
    )
    select = batch.target_mask[:, 1:].bool()  # row t predicts token t+1
    sample_index = select.nonzero()[:, 0]
    logp, correct = chunked_target_logprobs(hidden[:, :-1][select], head, batch.input_ids[:, 1:][select], chunk_tokens)
    b = batch.size
    nll_sum = per_sample_sum(-logp, sample_index, b)
    prompt_end = hidden[:, batch.prompt_width - 1].detach() if keep_cache else None
    return ResponseOutput(
        nll_sum=nll_sum,
        n_tokens=batch.target_mask.sum(1),
        n_correct=per_sample_sum(correct.long(), sample_index, b),
        logp_response=-nll_sum.detach(),
        prompt_end_hidden=prompt_end,
        cache=cache,
    )


@torch.no_grad()
def refusal_logprobs_prefix_kv(
    model: nn.Module, batch: Batch, cache: Any, prompt_end_hidden: torch.Tensor, chunk_tokens: int | None = None
) -> torch.Tensor:
    """log π(y_r|x) [B] from the training forward's cache (consumed: it is cropped to P in place).

    The hidden state at P−1 already predicts y_r[0], so only y_r[:-1] is fed: Rr−1 new positions per sample,
    whose position ids continue each prompt's own length (the prompts are left-padded to different amounts).
    """
    decoder, head = lm_parts(model)
    hidden = prompt_end_hidden[:, None]  # [B, 1, H]
    width = batch.refusal_ids.shape[1]
    if width > 1:
        crop_cache(cache, batch.prompt_width)
        feed = batch.refusal_ids[:, :-1]
        mask = torch.cat([batch.attention_mask[:, : batch.prompt_width], batch.refusal_mask[:, :-1]], dim=1)
        positions = batch.prompt_lengths[:, None] + torch.arange(width - 1, device=feed.device)[None]
        more, _ = decoder_forward(decoder, feed, mask, positions, cache=cache, use_cache=True)
        hidden = torch.cat([hidden, more], dim=1)  # [B, Rr, H]
    select = batch.refusal_mask.bool()
    logp, _ = chunked_target_logprobs(hidden[select], head, batch.refusal_ids[select], chunk_tokens)
    return per_sample_sum(logp, select.nonzero()[:, 0], batch.size)


@torch.no_grad()
def refusal_token_logprobs_naive(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Reference log π(y_r,t | x, y_r,<t) [B, R] (0 on padding): one more full forward over [left-padded x ‖
    right-padded y_r], full logits."""
    p = batch.prompt_width
    ids = torch.cat([batch.input_ids[:, :p], batch.refusal_ids], dim=1)
    mask = torch.cat([batch.attention_mask[:, :p], batch.refusal_mask], dim=1)
    logits = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=False).logits
    logp_all = torch.log_softmax(logits[:, p - 1 : -1].float(), dim=-1)  # rows predicting y_r
    return logp_all.gather(-1, batch.refusal_ids[..., None])[..., 0] * batch.refusal_mask


def refusal_logprobs_naive(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Reference log π(y_r|x) [B]: the sum of ``refusal_token_logprobs_naive``."""
    return refusal_token_logprobs_naive(model, batch).sum(1)


@torch.no_grad()
def response_logprobs_naive(model: nn.Module, batch: Batch) -> torch.Tensor:
    """Reference log π(y|x) [B] over the trained tokens via the stock forward (tests only)."""
    logits = model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        use_cache=False,
    ).logits
    logp = torch.log_softmax(logits[:, :-1].float(), dim=-1).gather(-1, batch.input_ids[:, 1:, None])[..., 0]
    return (logp * batch.target_mask[:, 1:]).sum(1)
