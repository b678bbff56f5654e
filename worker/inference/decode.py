"""One batched decoding run for serving: left padding, KV cache, per-row sampling, adapters and stops.

Each row carries its own sampling parameters (temperature, top_p, a seeded generator), its own token budget, its
own stop strings and its own LoRA adapter: rows of different adapters share one forward through PEFT's mixed-batch
``adapter_names`` (``"__base__"`` is the base model), so a batch is never split by adapter. Finished rows keep being
fed a masked pad until the whole batch is done, the way ``worker.evaluation.generation.greedy_decode`` does it;
only the last position is projected onto the vocabulary (``logits_to_keep=1``).

Text is decoded incrementally per row. A row's stream holds back any tail that could still become a stop string
or that ends in an incomplete UTF-8 character, so a client never sees text that is later taken back.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from worker.evaluation.generation import left_pad
from worker.training.data import positions_from_mask
from worker.training.model import cache_kwarg, cache_of

BASE_ADAPTER = "__base__"  # PEFT's name for "no adapter" in a mixed batch


@dataclass
class Row:
    """One choice to generate. ``on_text(delta)`` receives text as it becomes final (may be None)."""

    prompt_ids: list[int]
    max_new_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: Sequence[str] = ()
    adapter: str = BASE_ADAPTER
    on_text: Callable[[str], None] | None = None
    cancelled: Callable[[], bool] | None = None  # polled every step: the client went away or timed out
    tokens: list[int] = field(default_factory=list)
    text: str = ""
    finish_reason: str | None = None  # "stop" (EOS or a stop string), "length" or "cancelled"
    _emitted: int = 0


def _holdback(text: str, stops: Sequence[str]) -> int:
    """How many trailing characters may still turn into a stop string or complete a multi-byte character."""
    keep = 1 if text.endswith("\ufffd") else 0
    for s in stops:
        for k in range(min(len(s) - 1, len(text)), 0, -1):
            if s.startswith(text[-k:]):
                keep = max(keep, k)
                break
    return keep


def _update_text(row: Row, tokenizer: Any, done: bool) -> bool:
    """Re-decode the row, apply stop strings, stream what is final. True when a stop string ended the row."""
    text = tokenizer.decode(row.tokens, skip_special_tokens=True)
    hits = [i for i in (text.find(s) for s in row.stop if s) if i >= 0]
    stopped = bool(hits)
    if stopped:
        text = text[: min(hits)]
    row.text = text
    final = len(text) if (done or stopped) else len(text) - _holdback(text, row.stop)
    if row.on_text is not None and final > row._emitted:
        row.on_text(text[row._emitted : final])
        row._emitted = final
    return stopped


def _pick(logits: torch.Tensor, rows: Sequence[Row], generators: Sequence[torch.Generator | None]) -> torch.Tensor:
    """Next token per row: argmax at temperature 0, else nucleus sampling with the row's own generator."""
    out = logits.argmax(-1)
    for i, row in enumerate(rows):
        if row.temperature <= 0 or row.finish_reason is not None:
            continue
        probs = torch.softmax(logits[i].float() / row.temperature, dim=-1)
        if row.top_p < 1.0:
            sorted_p, order = probs.sort(descending=True)
            outside = sorted_p.cumsum(-1) - sorted_p > row.top_p  # keep the smallest set reaching top_p
            sorted_p[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_p)
        out[i] = torch.multinomial(probs.cpu(), 1, generator=generators[i]).to(out.device)[0]
    return out


@torch.no_grad()
def decode(model: nn.Module, tokenizer: Any, rows: Sequence[Row], eos_ids: set[int], pad_id: int) -> None:
    """Generate every row to its end, in place (``tokens``, ``text``, ``finish_reason``)."""
    if not rows:
        return
    device = next(model.parameters()).device
    ids, mask = (t.to(device) for t in left_pad([r.prompt_ids for r in rows], pad_id))
    generators = []
    for r in rows:
        g = None
        if r.temperature > 0:
            g = torch.Generator()
            g.manual_seed(r.seed if r.seed is not None else int(torch.randint(0, 2**62, ()).item()))
        generators.append(g)
    extra: dict[str, Any] = {}
    if hasattr(model, "peft_config"):
        extra["adapter_names"] = [r.adapter for r in rows]
    cache_kw = cache_kwarg(model)
    out = model(input_ids=ids, attention_mask=mask, position_ids=positions_from_mask(mask), use_cache=True,
                logits_to_keep=1, **extra)
    budget = max(r.max_new_tokens for r in rows)
    for step in range(budget):
        nxt = _pick(out.logits[:, -1], rows, generators)
        for i, row in enumerate(rows):
            if row.finish_reason is not None:
                nxt[i] = pad_id
                continue
            if row.cancelled is not None and row.cancelled():
                row.finish_reason = "cancelled"
                continue
            token = int(nxt[i])
            if token in eos_ids:
                row.finish_reason = "stop"
                _update_text(row, tokenizer, done=True)
                continue
            row.tokens.append(token)
            if _update_text(row, tokenizer, done=False):
                row.finish_reason = "stop"
            elif len(row.tokens) >= row.max_new_tokens:
                row.finish_reason = "length"
                _update_text(row, tokenizer, done=True)
        live = torch.tensor([r.finish_reason is None for r in rows], device=device)
        if not bool(live.any()) or step == budget - 1:
            break
        mask = torch.cat([mask, live.long()[:, None]], dim=1)  # a finished row's new column is masked out
        position = (mask.sum(-1, keepdim=True) - 1).clamp(min=0)
        out = model(input_ids=nxt[:, None], attention_mask=mask, position_ids=position, use_cache=True,
                    logits_to_keep=1, **{cache_kw: cache_of(out)}, **extra)
