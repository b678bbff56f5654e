"""Which pictures the dashboard draws, from which data: the job page's curves and histograms, the overview's
jobs over time, status, queue and HS charts. The drawing itself is service/dashboard/charts.py."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from markupsafe import Markup

from service.dashboard.charts import PALETTE, Bar, Rule, Series, bar_chart, line_chart, timeline
from service.fine_tuning.report_schema import EvalReport

Metrics = Sequence[Mapping[str, Any]]
STATUS_COLOURS = {
    "succeeded": "#067647",
    "failed": "#b42318",
    "cancelled": "#475467",
    "running": "#175cd3",
    "paused": "#b54708",
    "queued": "#b54708",
    "validating_files": "#b54708",
}
LEVEL_COLOURS = {"info": "#175cd3", "warn": "#b54708", "error": "#b42318"}


def _series(metrics: Metrics, key: str, label: str, colour: str, dashed: bool = False) -> Series:
    return Series(label, [(m.get("step"), m.get(key)) for m in metrics], colour, dashed)


def loss_curves(metrics: Metrics) -> Markup:
    """The weighted loss is what Antibody differentiated; the unweighted one is comparable with plain SFT."""
    return line_chart(
        [
            _series(metrics, "train_loss", "train (Antibody-weighted)", PALETTE[0]),
            _series(metrics, "train_loss_unweighted", "train (unweighted)", PALETTE[5], dashed=True),
            _series(metrics, "valid_loss", "valid", PALETTE[1]),
        ],
        title="Loss",
        x_label="step",
        y_label="NLL per token",
    )


def batch_weights(metrics: Metrics) -> Markup:
    return line_chart(
        [
            _series(metrics, "weight_max", "max", PALETTE[2]),
            _series(metrics, "weight_mean", "mean", PALETTE[0]),
            _series(metrics, "weight_min", "min", PALETTE[1]),
        ],
        title="Antibody weights in each batch",
        x_label="step",
        y_label="weight (softmax share)",
    )


def negative_ratio(metrics: Metrics) -> Markup:
    return line_chart(
        [_series(metrics, "frac_r_negative", "r < 0", PALETTE[1])],
        title="Fraction of the batch with r < 0",
        x_label="step",
        y_label="fraction",
        y_range=(0.0, 1.0),
    )


def weight_histogram(report: EvalReport | None) -> Markup:
    """Per training line, its mean weight relative to the average line (1 = an average share)."""
    section = report.attenuation if report else None
    if section is None:
        return bar_chart([], title="Training lines by relative Antibody weight", y_label="lines")
    cut = section.attenuated_below  # buckets wholly below it are the attenuated lines: drawn red
    bars = [
        Bar(f"≥{b.low:g}" if b.high is None else f"{b.low:g}–{b.high:g}", b.count,
            PALETTE[1] if b.high is not None and b.high <= cut else PALETTE[0])
        for b in section.buckets
    ]  # fmt: skip
    return bar_chart(bars, title="Training lines by relative Antibody weight", y_label="lines")


def scores(report: EvalReport | None) -> Markup:
    """HS under each judge and FA, each next to the base model's."""
    bars: list[Bar] = []
    if report is not None:
        for section in (report.harmful, report.harmful_second_judge):
            if section is None:
                continue
            judge = section.protocol.judge.split("_")[0]  # "keyword_refusal" → "keyword": fits under a bar
            if section.base is not None:
                bars.append(Bar(f"base HS ({judge})", section.base.score, PALETTE[5]))
            bars.append(Bar(f"HS ({judge})", section.score, PALETTE[1]))
        fa = report.accuracy
        if fa is not None:
            if fa.base is not None and fa.base.accuracy is not None:
                bars.append(Bar("base FA", fa.base.accuracy, PALETTE[5]))
            bars.append(Bar("FA", fa.accuracy, PALETTE[2]))
    return bar_chart(bars, title="Harmful score and accuracy against the base", y_label="%")


def status_timeline(events: Sequence[tuple[float, str, str]]) -> Markup:
    """(time, message, level) of the job's message events."""
    return timeline([(t, msg, LEVEL_COLOURS.get(level, PALETTE[5])) for t, msg, level in events], title="Timeline")


def jobs_by_status(counts: Mapping[str, int]) -> Markup:
    bars = [Bar(s, n, STATUS_COLOURS.get(s, PALETTE[5])) for s, n in sorted(counts.items())]
    return bar_chart(bars, title="Jobs by status", y_label="jobs")


def per_hour(
    jobs: Sequence[tuple[int, int | None, str]], now: float, hours: int
) -> dict[str, list[tuple[float, float]]]:
    """Jobs created, and jobs ended per final status, in each of the last ``hours`` hours: (hours ago, count), the
    current hour at 0."""
    counts: dict[str, list[int]] = {"created": [0] * hours}
    for created, finished, status in jobs:
        events = [("created", created)] + ([(status, finished)] if finished is not None else [])
        for series, at in events:
            ago = int((now - at) // 3600)
            if 0 <= ago < hours:
                counts.setdefault(series, [0] * hours)[ago] += 1
    return {k: [(-ago, float(n)) for ago, n in reversed(list(enumerate(v)))] for k, v in counts.items()}


def jobs_over_time(jobs: Sequence[tuple[int, int | None, str]], now: float, hours: int = 24) -> Markup:
    series = [
        Series(name, points, STATUS_COLOURS.get(name, PALETTE[0]), dashed=name == "created")
        for name, points in sorted(per_hour(jobs, now, hours).items())
    ]
    return line_chart(series if jobs else [], title=f"Jobs per hour, last {hours} h", x_label="hour (0 = now)",
                      y_label="jobs")  # fmt: skip


def queue_depths(waiting: Sequence[tuple[str, int | None]]) -> Markup:
    """Messages waiting per broker queue (one gpu.<class> queue per GPU class); an unreadable broker draws none."""
    bars = [Bar(name, n, PALETTE[0]) for name, n in waiting if n is not None]
    return bar_chart(bars, title="Queue depth per GPU class", y_label="waiting")


def hs_distribution(hs_values: Sequence[float], gate: float | None) -> Markup:
    """Recent jobs' HS in 10-point bins, with the provider's FTAAS_SAFETY_MAX_HS drawn where one is set."""
    counts = [0] * 10
    for hs in hs_values:
        counts[min(9, max(0, int(hs // 10)))] += 1
    bars = [Bar(f"{10 * i}–{10 * i + 10}", n, PALETTE[1] if gate is not None and 10 * i >= gate else PALETTE[0])
            for i, n in enumerate(counts)]  # fmt: skip
    rule = Rule(gate / 10, f"gate {gate:g}%") if gate is not None else None
    title = f"HS of the last {len(hs_values)} evaluated jobs" + ("" if gate is not None else " (no HS gate set)")
    return bar_chart(bars if hs_values else [], title=title, y_label="jobs", rule=rule)
