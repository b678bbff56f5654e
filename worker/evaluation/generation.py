"""Batched greedy generation for evaluation: chat template, left padding, KV cache, per-row stop at EOS.

Left padding makes every prompt end at the same position, so one decoding step appends one column for the
whole batch; position ids come from the attention mask, so a padded row computes exactly what it would alone
(up to floating-point reduction order). Prompts are sorted by length before batching to waste little compute
on padding; results come back in the caller's order.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from worker.training.data import FALLBACK_GENERATION_PROMPT, FALLBACK_TEMPLATE, positions_from_mask
from worker.training.model import decoder_forward, lm_parts, sdpa_without_cudnn

Prompt = str | list[dict[str, Any]]


@dataclass
class Generation:
    """One completion. ``token_ids`` excludes the stop token; ``finished`` is False when cut at the limit."""

    text: str
    token_ids: list[int]
    finished: bool


def render_prompt(tokenizer: Any, prompt: Prompt, system: str | None = None) -> list[int]:
    """Token ids of a user prompt (or a message list) rendered with the chat template, assistant header
    included."""
    messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)
    if system is not None and (not messages or messages[0]["role"] != "system"):
        messages = [{"role": "system", "content": system}] + messages
    clean = [{"role": m["role"], "content": m.get("content") or ""} for m in messages]
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(clean, tokenize=False, add_generation_prompt=True)
    else:
        text = "".join(FALLBACK_TEMPLATE.format(**m) for m in clean) + FALLBACK_GENERATION_PROMPT
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def stop_ids(tokenizer: Any, model: nn.Module | None = None) -> set[int]:
    """End-of-sequence ids from the tokenizer and the model's generation config (either may list several)."""
    found: set[int] = set()
    candidates: list[Any] = [getattr(tokenizer, "eos_token_id", None)]
    gen_cfg = getattr(model, "generation_config", None)
    if gen_cfg is not None:
        candidates.append(gen_cfg.eos_token_id)
    for c in candidates:
        if isinstance(c, int):
            found.add(c)
        elif isinstance(c, list | tuple):
            found.update(int(x) for x in c)
    if not found:
        raise ValueError("the tokenizer defines no eos token; generation could never stop early")
    return found


def left_pad(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(input_ids, attention_mask), both [B, P] with P the longest sequence; pads sit on the left."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for i, s in enumerate(sequences):
        if s:
            ids[i, width - len(s) :] = torch.tensor(list(s), dtype=torch.long)
            mask[i, width - len(s) :] = 1
    return ids, mask


@torch.no_grad()
def greedy_decode(
    model: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    max_new_tokens: int,
    eos_ids: set[int],
    pad_id: int,
) -> tuple[list[list[int]], list[bool]]:
    """Greedy continuation of a left-padded batch.

    input_ids, attention_mask: [B, P] on the model's device. Returns per row the new token ids (stop token
    excluded) and whether the row stopped at an EOS. A finished row keeps being fed ``pad_id`` (masked out)
    until every row is done or ``max_new_tokens`` is reached; only the last position is projected onto the
    vocabulary, so memory stays O(B·V) instead of O(B·P·V).
    """
    decoder, head = lm_parts(model)
    batch = input_ids.shape[0]
    eos = torch.tensor(sorted(eos_ids), device=input_ids.device)
    done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    out = torch.empty((batch, 0), dtype=torch.long, device=input_ids.device)
    mask = attention_mask
    hidden, cache = decoder_forward(decoder, input_ids, mask, positions_from_mask(mask), use_cache=True)
    for _ in range(max_new_tokens):
        nxt = head(hidden[:, -1]).argmax(-1)  # [B]
        nxt = torch.where(done, torch.full_like(nxt, pad_id), nxt)
        out = torch.cat([out, nxt[:, None]], dim=1)
        done = done | torch.isin(nxt, eos)
        if bool(done.all()) or out.shape[1] == max_new_tokens:
            break
        # A finished row's new column is masked: it neither attends nor is attended to.
        mask = torch.cat([mask, (~done).long()[:, None]], dim=1)
        position = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
        hidden, cache = decoder_forward(decoder, nxt[:, None], mask, position, cache=cache, use_cache=True)
    tokens: list[list[int]] = []
    finished: list[bool] = []
    for row in out.tolist():
        stop = next((j for j, t in enumerate(row) if t in eos_ids), None)
        tokens.append(row if stop is None else row[:stop])
        finished.append(stop is not None)
    return tokens, finished


def decoding_attention(device: torch.device) -> AbstractContextManager:
    """``model.sdpa_without_cudnn``; a name of its own so ``bench/decode_attention.py`` can swap it out."""
    return sdpa_without_cudnn(device)


def generate(
    model: nn.Module,
    tokenizer: Any,
    prompts: Sequence[Prompt],
    max_new_tokens: int = 128,
    batch_size: int = 16,
    system: str | None = None,
    max_prompt_tokens: int = 1024,
    progress: Callable[[int, int], None] | None = None,
) -> list[Generation]:
    """Greedy completions of ``prompts`` (strings or message lists), in the given order.

    Prompts longer than ``max_prompt_tokens`` keep their tail (which holds the assistant header). The model is
    switched to eval mode for the call and restored afterwards. ``progress(done, total)`` is called after each
    batch: a long evaluation is minutes of otherwise silent work.
    """
    if not prompts:
        return []
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    eos_ids = stop_ids(tokenizer, model)
    encoded = [render_prompt(tokenizer, p, system)[-max_prompt_tokens:] for p in prompts]
    order = sorted(range(len(encoded)), key=lambda i: len(encoded[i]))
    results: list[Generation | None] = [None] * len(encoded)
    was_training = model.training
    model.eval()
    try:
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            ids, mask = (t.to(device) for t in left_pad([encoded[i] for i in chunk], pad_id))
            with decoding_attention(device):
                tokens, finished = greedy_decode(model, ids, mask, max_new_tokens, eos_ids, pad_id)
            for i, toks, fin in zip(chunk, tokens, finished, strict=True):
                text = tokenizer.decode(toks, skip_special_tokens=True)
                results[i] = Generation(text=text.strip(), token_ids=toks, finished=fin)
            if progress is not None:
                progress(min(start + batch_size, len(order)), len(order))
    finally:
        model.train(was_training)
    return [r for r in results if r is not None]
