"""Near-duplicate prompts: the checks that keep alignment, attack and evaluation data disjoint."""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

NEAR_DUPLICATE = 0.6  # word-set Jaccard at or above which two prompts count as the same request


def normalise(prompt: str) -> str:
    """Lower-case words separated by single spaces: the key for exact-duplicate checks."""
    return " ".join(re.sub(r"[^a-z0-9]+", " ", prompt.lower()).split())


def _words(prompt: str) -> frozenset[str]:
    return frozenset(normalise(prompt).split())


def near_duplicate(a: frozenset[str], b: frozenset[str], threshold: float = NEAR_DUPLICATE) -> bool:
    """Same request, up to a few words: word-set Jaccard ≥ threshold (exact duplicates included)."""
    return bool(a | b) and len(a & b) / len(a | b) >= threshold


class NearIndex:
    """Prompts indexed by word, so that a near-duplicate look-up only scores prompts sharing a word with the
    query (a linear scan over ~1,500 × 350 prompt pairs takes seconds)."""

    def __init__(self, prompts: Iterable[str] = ()):
        self.prompts: list[str] = []
        self.words: list[frozenset[str]] = []
        self.by_word: dict[str, list[int]] = defaultdict(list)
        for prompt in prompts:
            self.add(prompt)

    def add(self, prompt: str) -> None:
        words = _words(prompt)
        for w in words:
            self.by_word[w].append(len(self.prompts))
        self.prompts.append(prompt)
        self.words.append(words)

    def matches(self, prompt: str, threshold: float = NEAR_DUPLICATE) -> list[str]:
        words = _words(prompt)
        shared = Counter(i for w in words for i in self.by_word.get(w, ()))
        return [
            self.prompts[i] for i, n in sorted(shared.items()) if n / (len(words) + len(self.words[i]) - n) >= threshold
        ]


def first_user_message(record: dict[str, Any]) -> str:
    for msg in record.get("messages") or []:
        if msg.get("role") == "user":
            return str(msg.get("content") or "")
    raise ValueError(f"record has no user message: {str(record)[:120]}")
