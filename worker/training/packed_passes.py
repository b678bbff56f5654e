"""The forward passes of one Antibody step on a ``PackedBatch`` (``packing.py``): the packed analogues of
``passes.response_pass`` and ``passes.refusal_logprobs_prefix_kv``, with the same per-sample outputs.

The block-diagonal mask is passed as an explicit 4-D mask. transformers can infer it from restarting position
ids instead, but only without a KV cache (``masking_utils._preprocess_mask_arguments``), and the prefix-KV
refusal pass needs the training forward's cache.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from worker.training.antibody import per_sample_sum
from worker.training.chunked_ce import chunked_target_logprobs
from worker.training.model import decoder_forward, lm_parts
from worker.training.packing import PackedBatch, block_causal_mask
from worker.training.passes import ResponseOutput


def _mask_dtype(decoder: Any) -> torch.dtype:
    return decoder.get_input_embeddings().weight.dtype


def packed_response_pass(
    model: nn.Module, batch: PackedBatch, keep_cache: bool, chunk_tokens: int | None = None
) -> ResponseOutput:
    """Training forward over the packed x‖y segments; per-sample sums over each segment's targets. All outputs
    [B] in batch order, as ``passes.response_pass`` returns them."""
    decoder, head = lm_parts(model)
    mask = block_causal_mask(batch.segment_ids, batch.segment_ids, 0, _mask_dtype(decoder))
    hidden, cache = decoder_forward(decoder, batch.input_ids, mask, batch.position_ids, use_cache=keep_cache)
    select = batch.target_mask[:, 1:].bool()  # row t predicts token t+1, of the same segment (prompts are non-empty)
    sample_index = batch.segment_ids[:, 1:][select]
    logp, correct = chunked_target_logprobs(hidden[:, :-1][select], head, batch.input_ids[:, 1:][select], chunk_tokens)
    b = batch.size
    nll_sum = per_sample_sum(-logp, sample_index, b)
    real = batch.segment_ids >= 0
    rows, cols = batch.prompt_end.unbind(1)
    return ResponseOutput(
        nll_sum=nll_sum,
        n_tokens=per_sample_sum(batch.target_mask[real], batch.segment_ids[real], b),
        n_correct=per_sample_sum(correct.long(), sample_index, b),
        logp_response=-nll_sum.detach(),
        prompt_end_hidden=hidden[rows, cols].detach() if keep_cache else None,
        cache=cache,
    )


@torch.no_grad()
def packed_refusal_logprobs(
    model: nn.Module,
    batch: PackedBatch,
    cache: Any,
    prompt_end_hidden: torch.Tensor,
    chunk_tokens: int | None = None,
) -> torch.Tensor:
    """log π(y_r|x) [B] from the packed training forward's KV cache (which grows by the refusal queries).

    The cache is not cropped: the mask lets each refusal query see only its own sample's prompt positions, so
    the response tokens and the other samples in the row are invisible, as in the padded prefix-KV pass.
    """
    decoder, head = lm_parts(model)
    hidden, targets = [prompt_end_hidden], [batch.first_refusal]
    index = [torch.arange(batch.size, device=prompt_end_hidden.device)]
    if batch.ref_ids.shape[1] > 0:
        keys = torch.cat([batch.segment_ids.masked_fill(~batch.is_prompt, -2), batch.ref_segment], dim=1)
        width = batch.input_ids.shape[1]
        mask = block_causal_mask(batch.ref_segment, keys, width, _mask_dtype(decoder))
        more, _ = decoder_forward(decoder, batch.ref_ids, mask, batch.ref_positions, cache=cache, use_cache=True)
        real = batch.ref_segment >= 0
        hidden.append(more[real])
        targets.append(batch.ref_next[real])
        index.append(batch.ref_segment[real])
    logp, _ = chunked_target_logprobs(torch.cat(hidden), head, torch.cat(targets), chunk_tokens)
    return per_sample_sum(logp, torch.cat(index), batch.size)


def packed_sample_passes(
    model: nn.Module, batch: PackedBatch, refusal_pass: str, chunk_tokens: int | None = None
) -> tuple[ResponseOutput, torch.Tensor, torch.Tensor]:
    """(training forward, log π(y_r|x) [B], len(y_r) [B]) of one packed micro-batch. ``refusal_pass`` "naive"
    scores the packed x‖y_r in a second no-grad forward (``pack(..., naive_refusal=True)``)."""
    prefix_kv = refusal_pass == "prefix_kv"
    out = packed_response_pass(model, batch, keep_cache=prefix_kv, chunk_tokens=chunk_tokens)
    if prefix_kv:
        assert out.prompt_end_hidden is not None
        logp_ref = packed_refusal_logprobs(model, batch, out.cache, out.prompt_end_hidden, chunk_tokens)
    else:
        if batch.naive_refusal is None:
            raise ValueError("refusal_pass='naive' needs pack(..., naive_refusal=True)")
        with torch.no_grad():
            logp_ref = packed_response_pass(model, batch.naive_refusal, False, chunk_tokens).logp_response
    out.cache = None  # free the cache before backward
    return out, logp_ref, batch.n_refusal
