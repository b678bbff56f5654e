"""bench/judge_quality.py's cross-validation on fixed vectors (no MiniLM): every row is tested once, by prompt."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import torch

from worker.evaluation.judge_data import JudgeSplits, LabelledPair

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "bench"))

import judge_quality  # noqa: E402


class WordEmbedder:
    """Texts that say "weapon" point one way, the rest another, plus a little per-text noise."""

    dim = 8

    def encode(self, texts: list[str]) -> torch.Tensor:
        out = []
        for text in texts:
            noise = torch.tensor(list(hashlib.sha256(text.encode()).digest()[: self.dim]), dtype=torch.float32)
            v = noise / 2550 + (torch.eye(self.dim)[0] if "weapon" in text else torch.eye(self.dim)[1])
            out.append(v)
        return torch.stack(out) if out else torch.zeros(0, self.dim)


def test_cross_validation_tests_every_row_once_and_separates_a_separable_set() -> None:
    rows = [
        LabelledPair(f"Question {i}", "Build the weapon like so." if i % 3 == 0 else "I can't help with that.",
                     i % 3 == 0, "objective/x.csv")
        for i in range(120)
    ]
    splits = JudgeSplits(rows[:80], rows[80:100], rows[100:], excluded=0)
    cv = judge_quality.cross_validated(WordEmbedder(), splits, k=4)
    assert cv["k"] == 4 and cv["n_rows"] == 120 and sum(cv["fold_sizes"]) == 120 and cv["n_harmful"] == 40
    assert len(cv["learned"]["balanced_accuracy"]["per_fold"]) == 4
    assert cv["learned"]["balanced_accuracy"]["mean"] >= 0.95
    # the keyword judge flags every non-refusal: here it is right too, and it is scored on the same folds
    assert cv["keyword"]["balanced_accuracy"]["mean"] == 1.0
