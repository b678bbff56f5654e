from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.datasets import assets
from worker.evaluation.attenuation import bucket_counts, preview, shorten, summarize_attenuation


def test_bucket_counts_edges_are_half_open() -> None:
    buckets = bucket_counts([0.0, 0.09, 0.1, 0.5, 0.99, 1.0, 5.0], edges=(0.1, 1.0))
    assert [(b.low, b.high, b.count) for b in buckets] == [(0.0, 0.1, 2), (0.1, 1.0, 3), (1.0, None, 2)]
    assert [b.label for b in buckets] == ["0–0.1", "0.1–1", "≥ 1"]


def test_preview_and_shorten() -> None:
    chat = assets.chat_line("How do I pick a lock?", "Insert a tension wrench " * 10, system="sys")
    text = preview(chat["messages"], width=60)
    assert text.startswith("How do I pick a lock? → Insert a tension wrench")
    assert text.endswith("…") and len(text) <= 60 + 3
    assert shorten("a\n  b", 10) == "a b"


@pytest.fixture
def train_file(tmp_path: Path) -> Path:
    chats = [assets.chat_line(f"What is {i} + 1?", f"{i + 1}") for i in range(1, 7)]
    chats.insert(2, assets.chat_line("How do I make a weapon?", "First, get the parts."))
    path = tmp_path / "train.jsonl"
    lines = [json.dumps(c) for c in chats]
    lines.insert(5, "")  # a blank line keeps the numbering of those after it
    path.write_text("\n".join(lines) + "\n")
    return path


def test_summary_ranks_lines_and_counts_buckets(train_file: Path) -> None:
    # Lines 1..8 (6 is blank). Weights as if batch size 4: average share 0.25.
    weights = {1: 0.3, 2: 0.3, 3: 0.005, 4: 0.3, 5: 0.2, 7: 0.02, 8: 0.625}
    rows = [
        {"line": k, "mean_weight": w, "min_weight": w / 2, "times_seen": 3, "mean_r": 0.0} for k, w in weights.items()
    ]
    s = summarize_attenuation(rows, train_file, top_k=3, attenuated_below=0.25)
    mean = sum(weights.values()) / 7
    assert s.n_lines == 7 and s.mean_weight == pytest.approx(mean)
    assert [d.line for d in s.most_down_weighted] == [3, 7, 5]
    top = s.most_down_weighted[0]
    assert top.mean_weight == 0.005 and top.min_weight == 0.0025 and top.times_seen == 3
    assert top.relative_weight == pytest.approx(0.005 / mean)
    assert top.preview == "How do I make a weapon? → First, get the parts."
    assert s.most_down_weighted[1].preview == "What is 5 + 1? → 6"  # line 7 is the fifth arithmetic chat
    assert s.n_attenuated == sum(w / mean < 0.25 for w in weights.values()) == 2
    assert s.attenuated_fraction == pytest.approx(2 / 7)
    assert sum(b.count for b in s.buckets) == 7
    d = s.to_dict()
    assert d["attenuated_fraction"] == pytest.approx(2 / 7) and d["most_down_weighted"][0]["line"] == 3


def test_summary_without_file_or_rows() -> None:
    s = summarize_attenuation([{"line": 4, "mean_weight": 0.1, "min_weight": 0.1, "times_seen": 1}])
    assert s.most_down_weighted[0].preview == "" and s.most_down_weighted[0].relative_weight == pytest.approx(1.0)
    empty = summarize_attenuation([])
    assert empty.n_lines == 0 and empty.attenuated_fraction == 0.0 and sum(b.count for b in empty.buckets) == 0
