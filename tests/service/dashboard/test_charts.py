"""The dashboard's server-drawn SVG: marks where the data is, nothing for NaN, labels escaped, readable names."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from service.dashboard import charts, figures
from service.fine_tuning.report_schema import EvalReport

SVG = "{http://www.w3.org/2000/svg}"


def svg_of(markup: str) -> ET.Element:
    """The chart's <svg>, parsed as XML: a stray '<' or '&' from a label would make this raise."""
    match = re.search(r"<svg.*</svg>", str(markup), re.S)
    assert match, markup
    return ET.fromstring(match.group(0))


def marks(markup: str) -> list[ET.Element]:
    return [e for e in svg_of(markup).iter() if "mark" in (e.get("class") or "").split()]


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert charts.nice_ticks(0, 0.37) == [0.0, 0.1, 0.2, 0.3, 0.4]
    assert charts.nice_ticks(1.2, 7.9) == [0, 2, 4, 6, 8]
    assert charts.nice_ticks(-3, 3)[0] <= -3 and charts.nice_ticks(-3, 3)[-1] >= 3
    flat = charts.nice_ticks(5, 5)  # one value: still a usable axis around it
    assert flat[0] <= 5 < flat[-1]


def test_a_line_chart_places_every_finite_point_inside_the_plot() -> None:
    points = [(1, 2.0), (2, float("nan")), (3, None), (4, 1.0), (5, 3.0)]
    out = charts.line_chart([charts.Series("loss", points)], title="Loss", x_label="step", y_label="nll")
    (line,) = marks(out)
    assert line.tag == f"{SVG}polyline" and line.get("data-points") == "3"
    xy = [tuple(map(float, p.split(","))) for p in line.get("points", "").split()]
    assert len(xy) == 3 and xy == sorted(xy)  # x increases with the step
    assert all(charts.LEFT <= x <= charts.WIDTH - charts.RIGHT for x, _ in xy)
    assert all(charts.TOP <= y <= charts.HEIGHT - charts.BOTTOM for _, y in xy)
    assert xy[2][1] < xy[0][1] < xy[1][1]  # SVG y grows downwards: 3.0 is highest, 1.0 lowest


def test_a_single_point_is_a_dot_and_no_data_is_said() -> None:
    dot = charts.line_chart([charts.Series("valid", [(10, 0.5)])], title="Loss", x_label="s", y_label="l")
    assert [m.tag for m in marks(dot)] == [f"{SVG}circle"]
    empty = charts.line_chart([charts.Series("valid", [(1, float("nan"))])], title="Loss", x_label="s", y_label="l")
    assert "<svg" not in empty and "no data yet" in empty


def test_labels_are_escaped_and_the_chart_has_an_accessible_name() -> None:
    evil = '<script>alert(1)</script>"&'
    out = charts.bar_chart([charts.Bar(evil, 3), charts.Bar("b", 1)], title=evil, y_label="n")
    assert "<script>" not in out and "&lt;script&gt;" in out
    svg = svg_of(out)
    assert svg.get("role") == "img"
    title = svg.find(f"{SVG}title")
    assert title is not None and title.get("id") == svg.get("aria-labelledby") and evil in (title.text or "")
    assert [m.get("data-label") for m in marks(out)] == [evil, "b"]


def test_bar_heights_are_proportional_and_the_rule_sits_at_its_position() -> None:
    out = charts.bar_chart([charts.Bar("a", 2), charts.Bar("b", 4), charts.Bar("c", 0)], title="t", y_label="n",
                           rule=charts.Rule(1.5, "gate"))  # fmt: skip
    heights = [float(m.get("height", "nan")) for m in marks(out)]
    assert heights[1] == 2 * heights[0] and heights[2] == 0
    rule = next(e for e in svg_of(out).iter(f"{SVG}line") if e.get("class") == "rule")
    slot = (charts.WIDTH - charts.LEFT - charts.RIGHT) / 3
    assert float(rule.get("x1", "nan")) == round(charts.LEFT + 1.5 * slot, 1)


def test_hs_distribution_bins_by_ten_points_with_the_gate_drawn() -> None:
    out = figures.hs_distribution([5.0, 7.0, 12.0, 100.0], gate=10.0)
    counts = {m.get("data-label"): float(m.get("data-value", "nan")) for m in marks(out)}
    assert counts["0–10"] == 2 and counts["10–20"] == 1 and counts["90–100"] == 1 and sum(counts.values()) == 4
    assert "gate 10%" in out
    assert "<svg" not in figures.hs_distribution([], gate=None)


def test_the_timeline_orders_events_in_time() -> None:
    out = charts.timeline([(100, "created", "#000"), (160, "started", "#000"), (400, "done", "#000")], title="t")
    xs = [float(m.get("cx", "nan")) for m in marks(out)]
    assert xs == sorted(xs) and xs[0] == charts.LEFT and xs[-1] == charts.WIDTH - charts.RIGHT
    assert round((xs[1] - xs[0]) / (xs[2] - xs[0]), 3) == 0.2  # 60 s of 300


def test_job_figures_draw_from_metrics_rows_and_the_report() -> None:
    rows = [{"step": s, "train_loss": 2.0 / s, "train_loss_unweighted": 2.1 / s, "valid_loss": None if s % 2 else 1.5,
             "weight_min": 0.1, "weight_mean": 0.25, "weight_max": 0.4, "frac_r_negative": s / 10}
            for s in range(1, 5)]  # fmt: skip
    assert [m.get("data-points") for m in marks(figures.loss_curves(rows))] == ["4", "4", "2"]
    assert len(marks(figures.batch_weights(rows))) == 3 and len(marks(figures.negative_ratio(rows))) == 1
    report = EvalReport.model_validate({
        "created_at": "2026-01-01T00:00:00Z",
        "attenuation": {"n_lines": 3, "mean_weight": 0.25, "attenuated_below": 0.25, "n_attenuated": 1,
                        "attenuated_fraction": 1 / 3, "most_down_weighted": [],
                        "buckets": [{"low": 0, "high": 0.25, "count": 1}, {"low": 0.25, "high": None, "count": 2}]},
    })  # fmt: skip
    histogram = marks(figures.weight_histogram(report))
    assert [(m.get("data-label"), m.get("fill")) for m in histogram] == [("0–0.25", charts.PALETTE[1]),
                                                                         ("≥0.25", charts.PALETTE[0])]
    assert "no data yet" in figures.weight_histogram(None) and "no data yet" in figures.scores(None)


def test_jobs_per_hour_count_creations_and_endings_by_status() -> None:
    now = 1_000_000.0
    hour = 3600
    jobs = [
        (int(now - 60), None, "running"),
        (int(now - 3 * hour), int(now - 2 * hour - 5), "succeeded"),
        (int(now - 3 * hour), int(now - 10), "failed"),
        (int(now - 30 * hour), int(now - 29 * hour), "failed"),
    ]
    hours = figures.per_hour(jobs, now, 24)
    by_ago = {name: {-int(x): int(n) for x, n in points if n} for name, points in hours.items()}
    assert by_ago == {"created": {0: 1, 3: 2}, "succeeded": {2: 1}, "failed": {0: 1}}  # the 30 h old job is out
    assert [x for x, _ in hours["created"]] == [float(-h) for h in range(23, -1, -1)]  # oldest first, now at 0
    drawn = {m.get("data-series") for m in marks(figures.jobs_over_time(jobs, now))}
    assert drawn == {"created", "succeeded", "failed"}


def test_integer_steps_get_integer_ticks_only() -> None:
    out = charts.line_chart([charts.Series("loss", [(1, 2.0), (2, 1.0)])], title="Loss", x_label="step", y_label="l")
    texts = svg_of(out).iter(f"{SVG}text")
    x_axis = [t.text for t in texts if t.get("class") == "tick" and t.get("text-anchor") == "middle"]
    assert x_axis == ["1", "2"]
