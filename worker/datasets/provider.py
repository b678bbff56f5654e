"""Alignment splits from provider-supplied JSONL files (the format is in ``worker.datasets.splits``'s docstring)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from worker.datasets.dedupe import first_user_message
from worker.datasets.splits import AlignmentSplits, chat, refusal_for
from worker.training.refusals import DEFAULT_REFUSALS


def _read_chats(path: Path) -> list[dict[str, Any]]:
    records = []
    with open(path, encoding="utf-8") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            rec = json.loads(raw)
            msgs = rec.get("messages") if isinstance(rec, dict) else None
            if not isinstance(msgs, list) or not msgs or msgs[-1].get("role") != "assistant":
                raise ValueError(f"{path}:{line_no}: expected {{'messages': [..., {{'role': 'assistant'}}]}}")
            first_user_message(rec)
            records.append(rec)
    if not records:
        raise ValueError(f"{path}: no records")
    return records


def provider_splits(
    align_file: Path,
    harm_file: Path,
    refusal_file: Path | None = None,
    eval_file: Path | None = None,
    refusals: tuple[str, ...] | list[str] = DEFAULT_REFUSALS,
) -> AlignmentSplits:
    """Splits from provider JSONL files (format in the module docstring); raises if evaluation prompts overlap
    the alignment data. No attack split is made from provider data."""
    harm = _read_chats(Path(harm_file))
    refusal = (
        _read_chats(Path(refusal_file))
        if refusal_file
        else [chat(first_user_message(r), refusal_for(i, refusals)) for i, r in enumerate(harm)]
    )
    eval_harmful: list[str] = []
    if eval_file:
        with open(eval_file, encoding="utf-8") as fh:
            eval_harmful = [json.loads(line)["prompt"] for line in fh if line.strip()]
    splits = AlignmentSplits(
        align=_read_chats(Path(align_file)),
        harm=harm,
        refusal=refusal,
        attack=[],
        eval_harmful=eval_harmful,
        sources={"align": str(align_file), "harm": str(harm_file), "refusal": str(refusal_file or "derived")},
    )
    clashes = splits.overlaps()
    if clashes:
        raise ValueError(f"{len(clashes)} evaluation prompts overlap the alignment data, e.g. {clashes[0]}")
    return splits
