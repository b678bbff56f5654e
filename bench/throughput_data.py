"""The chat files ``throughput.py`` trains every arm on, identical for ours and TRL.

``varied``: a customer-like mix of real chats with realistic, varied lengths, in a seeded order: PyRIT's
labelled scorer-evaluation rows (LLM answers, refusals and compliance, tens to over a thousand tokens),
reasoning-gym's gsm_symbolic worked solutions and basic_arithmetic answers (short), and the everyday-prose chats
in ``bench/data``. ``fixed``: every line at least ``seq_len`` tokens (answers concatenated), so that truncation at
``max_seq_len = seq_len`` makes the batch shape exact (8×512, 16×1024).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

from worker.datasets import assets
from worker.evaluation.judge_data import labelled_rows

PROSE = Path(__file__).parent / "data" / "everyday_prose.jsonl"


def _sources(n: int, seed: int) -> list[tuple[str, str]]:
    """(prompt, response) pairs: about 40% PyRIT rows, 20% gsm_symbolic, 20% arithmetic, 20% everyday prose."""
    rng = random.Random(seed)
    pyrit = [(r.prompt, r.response) for r in labelled_rows() if r.response.strip()]
    rng.shuffle(pyrit)
    quarter = max(1, n // 5)
    gsm = assets.reasoning_gym_samples("gsm_symbolic", n=quarter, seed=seed)
    arithmetic = assets.reasoning_gym_samples("basic_arithmetic", n=quarter, seed=seed, max_digits=3, max_terms=4)
    prose = [(m["messages"][0]["content"], m["messages"][1]["content"]) for m in assets.read_jsonl(PROSE)]
    rows = pyrit[: n - 3 * quarter]
    rows += [(s["prompt"], s["response"]) for s in gsm + arithmetic]
    rows += [prose[i % len(prose)] for i in range(quarter)]
    rng.shuffle(rows)
    return rows[:n]


def varied_chats(n: int, seed: int = 0) -> list[dict[str, Any]]:
    return [assets.chat_line(p, r) for p, r in _sources(n, seed)]


def fixed_chats(n: int, seq_len: int, tokenizer: Any, seed: int = 0) -> list[dict[str, Any]]:
    """``n`` chats whose tokenized length is at least ``seq_len``: each response is PyRIT / prose answers joined
    until it is long enough."""
    pool = _sources(4 * n, seed)
    out, i = [], 0
    for _ in range(n):
        prompt, response = pool[i % len(pool)]
        i += 1
        while len(tokenizer(prompt + response)["input_ids"]) < seq_len + 8:
            response += "\n\n" + pool[i % len(pool)][1]
            i += 1
        out.append(assets.chat_line(prompt, response))
    return out


def shape_of(config: str) -> tuple[int, int]:
    """(batch size, max_seq_len) a configuration fixes: (0, 0) for ``varied``, (B, L) for ``BxL``."""
    if config == "varied":
        return 0, 0
    batch, seq_len = (int(x) for x in config.split("x"))
    return batch, seq_len


def write_data(path: Path, config: str, lines: int, tokenizer: Any, seed: int = 0) -> Path:
    """The chat file of a configuration (``varied`` or ``BxL``)."""
    seq_len = shape_of(config)[1]
    chats = fixed_chats(lines, seq_len, tokenizer, seed) if seq_len else varied_chats(lines, seed)
    return assets.write_jsonl(path, chats)
