"""Padding-free batches: the samples of a (micro-)batch packed into a few rows, each sample its own segment.

A padded batch spends compute on pad tokens in proportion to the spread of lengths: a batch with one long
and seven short chats is mostly padding. Packing places the samples first-fit-decreasing into rows no longer
than the longest sample, so no row is longer than the padded batch's width and there are never more rows than
samples. Position ids restart at 0 in every segment and attention is block-diagonal (``block_causal_mask``),
so every sample sees exactly the context it would see alone, and Antibody's per-sample sums (log π(y|x),
token counts, log π(y_r|x)) are segment sums over the packed rows; the samples keep their batch order (index
i of every per-sample tensor is ``examples[i]``), so the softmax still spans the whole logical batch.

The refusal continuation y_r of each sample is laid out for the packed prefix-KV pass: the hidden state of
the prompt's last token predicts y_r[0], and y_r[:-1] is fed as new queries in the sample's own row, allowed to
see that sample's prompt positions of the training forward's KV cache and its own earlier refusal tokens.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch

from worker.training.data import ChatExample


@dataclass
class PackedBatch:
    """B samples packed into `rows` rows of width L; the refusal queries take width Q (0 if every y_r is one
    token).

    input_ids, position_ids, segment_ids, target_mask, is_prompt: [rows, L]. ``segment_ids`` is the sample's
    index in the batch (-1 on the padding at the end of a row); ``target_mask`` is 1 on trained targets.
    prompt_end: [B, 2] (row, column) of each prompt's last token. first_refusal, n_refusal: [B] (y_r[0] and
    len(y_r)). ref_ids, ref_positions, ref_segment, ref_next: [rows, Q], the fed y_r[:-1] tokens, their
    position ids, their sample (-1 = padding) and the token each predicts. ``naive_refusal`` packs x‖y_r as
    trained targets, for the reference second forward (None unless asked for).
    """

    input_ids: torch.Tensor
    position_ids: torch.Tensor
    segment_ids: torch.Tensor
    target_mask: torch.Tensor
    is_prompt: torch.Tensor
    prompt_end: torch.Tensor
    first_refusal: torch.Tensor
    n_refusal: torch.Tensor
    ref_ids: torch.Tensor
    ref_positions: torch.Tensor
    ref_segment: torch.Tensor
    ref_next: torch.Tensor
    lines: list[int]
    naive_refusal: PackedBatch | None = None

    def to(self, device: torch.device | str) -> PackedBatch:
        moved: dict[str, Any] = {
            k: v.to(device) if isinstance(v, torch.Tensor | PackedBatch) else v for k, v in self.__dict__.items()
        }
        return PackedBatch(**moved)

    @property
    def size(self) -> int:
        return self.prompt_end.shape[0]


def first_fit_decreasing(lengths: Sequence[int], capacity: int) -> list[list[int]]:
    """Indices of ``lengths`` grouped into bins of at most ``capacity`` (longest first, each into the first bin
    with room). A length above the capacity gets a bin of its own."""
    bins: list[list[int]] = []
    room: list[int] = []
    for i in sorted(range(len(lengths)), key=lambda k: -lengths[k]):
        slot = next((b for b, free in enumerate(room) if free >= lengths[i]), None)
        if slot is None:
            bins.append([])
            room.append(capacity)
            slot = len(bins) - 1
        bins[slot].append(i)
        room[slot] -= lengths[i]
    return bins


def _refusal_rows(examples: Sequence[ChatExample], rows: list[list[int]], pad_id: int) -> dict[str, torch.Tensor]:
    fed = [[(i, j) for i in row for j in range(len(examples[i].refusal_ids) - 1)] for row in rows]
    width = max(len(r) for r in fed)
    shape = (len(rows), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    nxt = torch.zeros(shape, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    seg = torch.full(shape, -1, dtype=torch.long)
    for r, row in enumerate(fed):
        for q, (i, j) in enumerate(row):
            e = examples[i]
            ids[r, q], nxt[r, q] = e.refusal_ids[j], e.refusal_ids[j + 1]
            pos[r, q], seg[r, q] = len(e.prompt_ids) + j, i
    return {"ref_ids": ids, "ref_positions": pos, "ref_segment": seg, "ref_next": nxt}


def pack(
    examples: Sequence[ChatExample], pad_id: int, naive_refusal: bool = False, row_tokens: int | None = None
) -> PackedBatch:
    """Pack ``examples`` (each x‖y) into rows of at most ``row_tokens`` (None: the longest sample's length).
    See ``PackedBatch``.

    Wider rows waste less on padding, but the block-diagonal mask is dense, so attention costs rows × width²
    whatever the segments; the default never costs more attention per row than the padded batch.
    """
    if any(not e.prompt_ids or not e.refusal_ids for e in examples):
        raise ValueError("packing needs a non-empty prompt and refusal for every sample")
    lengths = [len(e.prompt_ids) + len(e.response_ids) for e in examples]
    rows = first_fit_decreasing(lengths, max(max(lengths), row_tokens or 0))
    width = max(sum(lengths[i] for i in row) for row in rows)
    shape = (len(rows), width)
    ids = torch.full(shape, pad_id, dtype=torch.long)
    pos = torch.zeros(shape, dtype=torch.long)
    seg = torch.full(shape, -1, dtype=torch.long)
    target = torch.zeros(shape, dtype=torch.long)
    prompt = torch.zeros(shape, dtype=torch.bool)
    prompt_end = torch.zeros((len(examples), 2), dtype=torch.long)
    for r, row in enumerate(rows):
        start = 0
        for i in row:
            e, n, p = examples[i], lengths[i], len(examples[i].prompt_ids)
            ids[r, start : start + n] = torch.tensor(e.prompt_ids + e.response_ids, dtype=torch.long)
            pos[r, start : start + n] = torch.arange(n)
            seg[r, start : start + n] = i
            target[r, start + p : start + n] = torch.tensor(e.response_mask, dtype=torch.long)
            prompt[r, start : start + p] = True
            prompt_end[i] = torch.tensor([r, start + p - 1])
            start += n
        pos[r, start:] = torch.arange(width - start)  # the tail restarts too: a segment of its own
    return PackedBatch(
        input_ids=ids,
        position_ids=pos,
        segment_ids=seg,
        target_mask=target,
        is_prompt=prompt,
        prompt_end=prompt_end,
        first_refusal=torch.tensor([e.refusal_ids[0] for e in examples], dtype=torch.long),
        n_refusal=torch.tensor([len(e.refusal_ids) for e in examples], dtype=torch.long),
        lines=[e.line for e in examples],
        naive_refusal=pack(_as_refusal_targets(examples), pad_id, row_tokens=row_tokens) if naive_refusal else None,
        **_refusal_rows(examples, rows, pad_id),
    )


def _as_refusal_targets(examples: Sequence[ChatExample]) -> list[ChatExample]:
    return [replace(e, response_ids=e.refusal_ids, response_mask=[1] * len(e.refusal_ids)) for e in examples]


def block_causal_mask(
    query_segments: torch.Tensor, key_segments: torch.Tensor, query_offset: int, dtype: torch.dtype
) -> torch.Tensor:
    """Additive attention mask [rows, 1, Q, K]: query q may see key k when both carry the same segment id and
    k ≤ q + ``query_offset`` (the queries sit after ``query_offset`` cached keys). query_segments: [rows, Q];
    key_segments: [rows, K].

    Padding shares segment -1 within its row, so a pad query still sees itself: a fully masked row would give
    NaN, and NaN survives multiplication by zero in backward. Additive (0 / dtype min) rather than boolean,
    because the eager attention adds the mask to the scores.
    """
    q_len, k_len = query_segments.shape[1], key_segments.shape[1]
    device = query_segments.device
    causal = torch.arange(k_len, device=device)[None, :] <= torch.arange(q_len, device=device)[:, None] + query_offset
    allowed = (query_segments[:, :, None] == key_segments[:, None, :]) & causal
    mask = torch.zeros(allowed.shape, dtype=dtype, device=device)
    return mask.masked_fill_(~allowed, torch.finfo(dtype).min)[:, None]
