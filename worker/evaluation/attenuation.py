"""Attenuation summary: which training lines Antibody's weighting turned down, from the per-sample weights
that training records (``TrainResult.attenuation`` rows:
``{line, mean_weight, min_weight, times_seen, ...}``).

Weights are softmax shares within a batch, so their scale depends on the batch size. The summary reports each
line's weight *relative to the average row* (``relative_weight = mean_weight / mean over rows``): 1.0 is an
average share, 0.1 a tenth of it. Buckets and the "attenuated" count use that relative scale.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# Upper edges of the relative-weight buckets; the last bucket is open (≥ 2.0).
DEFAULT_EDGES: tuple[float, ...] = (0.05, 0.1, 0.25, 0.5, 1.0, 2.0)


@dataclass
class DownWeighted:
    line: int  # 1-based line in the training file
    mean_weight: float
    relative_weight: float
    min_weight: float
    times_seen: int
    preview: str


@dataclass
class WeightBucket:
    low: float  # relative weight, inclusive
    high: float | None  # exclusive; None = open
    count: int

    @property
    def label(self) -> str:
        return f"≥ {self.low:g}" if self.high is None else f"{self.low:g}–{self.high:g}"


@dataclass
class AttenuationSummary:
    n_lines: int
    mean_weight: float  # the average row's mean weight (≈ 1 / batch size)
    attenuated_below: float  # relative-weight threshold for ``n_attenuated``
    n_attenuated: int
    buckets: list[WeightBucket] = field(default_factory=list)
    most_down_weighted: list[DownWeighted] = field(default_factory=list)

    @property
    def attenuated_fraction(self) -> float:
        return self.n_attenuated / self.n_lines if self.n_lines else 0.0

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["attenuated_fraction"] = self.attenuated_fraction
        return out


def bucket_counts(values: Iterable[float], edges: Sequence[float] = DEFAULT_EDGES) -> list[WeightBucket]:
    """Counts of ``values`` in [0, e0), [e0, e1), …, [e_last, ∞)."""
    lows = [0.0, *edges]
    highs: list[float | None] = [*edges, None]
    counts = [0] * len(lows)
    for v in values:
        k = next((i for i, h in enumerate(highs) if h is not None and v < h), len(lows) - 1)
        counts[k] += 1
    return [WeightBucket(lo, hi, c) for lo, hi, c in zip(lows, highs, counts, strict=True)]


def preview(messages: Sequence[Mapping[str, Any]], width: int = 120) -> str:
    """One line: the first user message and the first assistant answer, each shortened."""
    user = next((m.get("content") or "" for m in messages if m.get("role") == "user"), "")
    answer = next((m.get("content") or "" for m in messages if m.get("role") == "assistant"), "")
    half = max(width // 2, 8)
    return f"{shorten(user, half)} → {shorten(answer, half)}"


def shorten(text: str, width: int) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= width else flat[: width - 1].rstrip() + "…"


def read_lines(path: Path, wanted: set[int]) -> dict[int, list[dict[str, Any]]]:
    """Messages of the wanted 1-based lines of a chat JSONL file (unparsable lines are skipped)."""
    out: dict[int, list[dict[str, Any]]] = {}
    with open(path, encoding="utf-8") as fh:
        for line_no, raw in enumerate(fh, start=1):
            if line_no not in wanted:
                continue
            try:
                obj = json.loads(raw)
            except json.JSONDecodeError:
                continue
            messages = obj.get("messages") if isinstance(obj, dict) else None
            if isinstance(messages, list):
                out[line_no] = messages
    return out


def summarize_attenuation(
    rows: Sequence[Mapping[str, Any]],
    train_file: Path | None = None,
    top_k: int = 20,
    attenuated_below: float = 0.25,
    edges: Sequence[float] = DEFAULT_EDGES,
) -> AttenuationSummary:
    """The ``top_k`` most down-weighted lines (lowest mean weight first, ties by line), counts by relative-
    weight bucket, and how many lines fell below ``attenuated_below``. Previews come from ``train_file`` when
    given."""
    clean = [r for r in rows if r.get("times_seen", 1) and math.isfinite(float(r["mean_weight"]))]
    if not clean:
        return AttenuationSummary(0, 0.0, attenuated_below, 0, bucket_counts([], edges), [])
    mean = sum(float(r["mean_weight"]) for r in clean) / len(clean)
    scale = 1.0 / mean if mean > 0 else 0.0
    relative = {int(r["line"]): float(r["mean_weight"]) * scale for r in clean}
    lowest = sorted(clean, key=lambda r: (float(r["mean_weight"]), int(r["line"])))[:top_k]
    texts = read_lines(Path(train_file), {int(r["line"]) for r in lowest}) if train_file else {}
    top = [
        DownWeighted(
            line=int(r["line"]),
            mean_weight=float(r["mean_weight"]),
            relative_weight=relative[int(r["line"])],
            min_weight=float(r.get("min_weight", r["mean_weight"])),
            times_seen=int(r.get("times_seen", 1)),
            preview=preview(texts[int(r["line"])]) if int(r["line"]) in texts else "",
        )
        for r in lowest
    ]
    return AttenuationSummary(
        n_lines=len(clean),
        mean_weight=mean,
        attenuated_below=attenuated_below,
        n_attenuated=sum(v < attenuated_below for v in relative.values()),
        buckets=bucket_counts(relative.values(), edges),
        most_down_weighted=top,
    )
