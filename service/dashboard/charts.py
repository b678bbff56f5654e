"""Inline SVG charts drawn on the server: provider machines have no internet (so no CDN), and a page must read the
same with JavaScript off. The viewBox scales to its container, so a chart fits a phone as well as a wide screen.

Every data mark carries class ``mark`` and its values in ``data-*`` attributes: the browser tests count them, and a
screen reader gets the same numbers from the chart's <title> and the tables printed next to it.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup, escape

# Drawn at about its display size on a two-column page, so 12 px text stays 12 px; a phone scales it to ~0.75.
WIDTH, HEIGHT = 480, 240
LEFT, RIGHT, TOP, BOTTOM = 60, 12, 18, 48
PALETTE = ("#175cd3", "#b42318", "#067647", "#b54708", "#6941c6", "#475467")


@dataclass(frozen=True)
class Series:
    label: str
    points: Sequence[tuple[Any, Any]]  # (x, y) as recorded: a None or NaN (no validation that step) is skipped
    color: str = PALETTE[0]
    dashed: bool = False


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    color: str = PALETTE[0]


@dataclass(frozen=True)
class Rule:
    """A reference line across the plot: a y value on line charts, a position in bar units on bar charts."""

    at: float
    label: str


def finite(points: Sequence[tuple[Any, Any]]) -> list[tuple[float, float]]:
    """The points a chart can place: both coordinates numbers, neither NaN nor infinite."""
    return [
        (float(x), float(y))
        for x, y in points
        if isinstance(x, int | float) and isinstance(y, int | float) and math.isfinite(x) and math.isfinite(y)
    ]


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About ``n`` round tick values (1, 2 or 5 × 10^k apart) covering [lo, hi]."""
    if not (math.isfinite(lo) and math.isfinite(hi)):
        return [0.0]
    if hi <= lo:
        hi = lo + (abs(lo) or 1.0)
    raw = (hi - lo) / max(1, n)
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw)
    first = math.floor(lo / step) * step
    ticks, t = [], first
    while t <= hi + step * 1e-9:
        ticks.append(round(t, 12))
        t += step
    if ticks[-1] < hi:
        ticks.append(round(t, 12))
    return ticks


def _fmt(v: float) -> str:
    return f"{v:.4g}"


def _empty(title: str, message: str) -> Markup:
    return Markup('<figure class="chart empty"><figcaption><b>{}</b> · {}</figcaption></figure>').format(
        title, message
    )


def _frame(title: str, body: list[str], legend: list[tuple[str, str, bool]], summary: str) -> Markup:
    """The <figure>: an SVG with an accessible name (title + one-line summary of the data) and an HTML legend."""
    marks = "".join(body)
    # The id for aria-labelledby comes from what the chart shows, not from a counter: a page then renders the same
    # bytes until its data changes, which its ETag relies on (render.py). Two charts share an id only if identical.
    n = hashlib.blake2s(f"{title}\0{summary}\0{marks}\0{legend}".encode(), digest_size=6).hexdigest()
    svg = (
        f'<svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-labelledby="chart-{n}" '
        f'preserveAspectRatio="xMidYMid meet" xmlns="http://www.w3.org/2000/svg">'
        f'<title id="chart-{n}">{escape(title)}: {escape(summary)}</title>' + marks + "</svg>"
    )
    keys = "".join(
        f'<span class="key"><i style="border-top:3px {"dashed" if dashed else "solid"} {color}"></i>'
        f"{escape(label)}</span>"
        for label, color, dashed in legend
    )
    return Markup(f'<figure class="chart"><figcaption><b>{escape(title)}</b> {keys}</figcaption>{svg}</figure>')


def _y_axis(ticks: list[float], y: Callable[[float], float], label: str) -> list[str]:
    out = []
    for t in ticks:
        py = y(t)
        out.append(
            f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py:.1f}" y2="{py:.1f}"/>'
            f'<text class="tick" x="{LEFT - 6}" y="{py + 4:.1f}" text-anchor="end">{_fmt(t)}</text>'
        )
    mid = (TOP + HEIGHT - BOTTOM) / 2
    out.append(
        f'<text class="axis" x="12" y="{mid:.1f}" transform="rotate(-90 12 {mid:.1f})" '
        f'text-anchor="middle">{escape(label)}</text>'
    )
    return out


def line_chart(
    series: Sequence[Series],
    *,
    title: str,
    x_label: str,
    y_label: str,
    rules: Sequence[Rule] = (),
    y_range: tuple[float, float] | None = None,
) -> Markup:
    """Lines over a shared numeric x axis; a series with a single point is drawn as a dot."""
    drawn = [(s, finite(s.points)) for s in series]
    drawn = [(s, pts) for s, pts in drawn if pts]
    if not drawn:
        return _empty(title, "no data yet")
    xs = [x for _, pts in drawn for x, _ in pts]
    ys = [y for _, pts in drawn for _, y in pts] + [r.at for r in rules]
    x0, x1 = min(xs), max(xs)
    x1 = x1 if x1 > x0 else x0 + 1
    lo, hi = min(ys), max(ys)
    if y_range is not None:  # a fixed scale (a fraction's 0–1) that still never clips a point
        lo, hi = min(lo, y_range[0]), max(hi, y_range[1])
    yt = nice_ticks(lo, hi)
    y0, y1 = yt[0], yt[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def px(x: float) -> float:
        return LEFT + (x - x0) / (x1 - x0) * plot_w

    def py(y: float) -> float:
        return TOP + (1 - (y - y0) / (y1 - y0)) * plot_h

    body = _y_axis(yt, py, y_label)
    whole = all(float(x).is_integer() for x in xs)  # steps and hours: no tick at step 1.5
    for t in nice_ticks(x0, x1, 6):
        if x0 <= t <= x1 and (not whole or float(t).is_integer()):
            body.append(f'<text class="tick" x="{px(t):.1f}" y="{HEIGHT - BOTTOM + 16}" text-anchor="middle">'
                        f"{_fmt(t)}</text>")
    body.append(f'<text class="axis" x="{LEFT + plot_w / 2:.1f}" y="{HEIGHT - 6}" text-anchor="middle">'
                f"{escape(x_label)}</text>")
    for r in rules:
        body.append(f'<line class="rule" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{py(r.at):.1f}" y2="{py(r.at):.1f}"/>'
                    f'<text class="rule-label" x="{WIDTH - RIGHT - 4}" y="{py(r.at) - 4:.1f}" text-anchor="end">'
                    f"{escape(r.label)}</text>")
    for s, pts in drawn:
        dash = ' stroke-dasharray="6 4"' if s.dashed else ""
        data = f'data-series="{escape(s.label)}" data-points="{len(pts)}"'
        if len(pts) == 1:
            (x, y), = pts
            body.append(f'<circle class="mark" {data} cx="{px(x):.1f}" cy="{py(y):.1f}" r="3.5" fill="{s.color}"/>')
            continue
        coords = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        body.append(f'<polyline class="mark" {data} points="{coords}" fill="none" stroke="{s.color}" '
                    f'stroke-width="2"{dash}/>')
    summary = "; ".join(f"{s.label}: {len(pts)} points, last {_fmt(pts[-1][1])}" for s, pts in drawn)
    return _frame(title, body, [(s.label, s.color, s.dashed) for s, _ in drawn], summary)


def _label(x: float, label: str) -> str:
    """A category under its bar, on two lines when it has a "(qualifier)", so narrow bars keep readable names."""
    head, _, tail = label.partition(" (")
    lines = [head, f"({tail}"] if tail else [head]
    spans = "".join(f'<tspan x="{x:.1f}" dy="{0 if i == 0 else 13}">{escape(t)}</tspan>' for i, t in enumerate(lines))
    return f'<text class="tick" x="{x:.1f}" y="{HEIGHT - BOTTOM + 15}" text-anchor="middle">{spans}</text>'


def bar_chart(bars: Sequence[Bar], *, title: str, y_label: str, rule: Rule | None = None) -> Markup:
    """One bar per category; ``rule.at`` is a position in bar units (2.5 = the middle of the third bar)."""
    if not bars:
        return _empty(title, "no data yet")
    yt = nice_ticks(0.0, max([b.value for b in bars] + [1.0]))
    top = yt[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    slot = plot_w / len(bars)

    def py(y: float) -> float:
        return TOP + (1 - y / top) * plot_h

    body = _y_axis(yt, py, y_label)
    for i, b in enumerate(bars):
        x, y = LEFT + i * slot + slot * 0.15, py(max(0.0, b.value))
        centre = x + slot * 0.35
        body.append(
            f'<rect class="mark" data-label="{escape(b.label)}" data-value="{_fmt(b.value)}" x="{x:.1f}" '
            f'y="{y:.1f}" width="{slot * 0.7:.1f}" height="{TOP + plot_h - y:.1f}" fill="{b.color}">'
            f"<title>{escape(b.label)}: {_fmt(b.value)}</title></rect>"
            # the value over the bar: a zero is a visible "0", not a missing bar
            f'<text class="value" x="{centre:.1f}" y="{y - 3:.1f}" text-anchor="middle">{_fmt(b.value)}</text>'
            + _label(centre, b.label)
        )
    if rule is not None:
        rx = LEFT + min(max(rule.at, 0.0), len(bars)) * slot
        body.append(f'<line class="rule" x1="{rx:.1f}" x2="{rx:.1f}" y1="{TOP}" y2="{TOP + plot_h}"/>'
                    f'<text class="rule-label" x="{rx + 4:.1f}" y="{TOP + 12}">{escape(rule.label)}</text>')
    summary = ", ".join(f"{b.label} {_fmt(b.value)}" for b in bars)
    return _frame(title, body, [], summary)


def timeline(moments: Sequence[tuple[float, str, str]], *, title: str) -> Markup:
    """(unix time, label, css colour) as dots on one time axis: when each thing happened, relative to the first."""
    if not moments:
        return _empty(title, "no events yet")
    t0 = min(t for t, _, _ in moments)
    span = max(1.0, max(t for t, _, _ in moments) - t0)
    plot_w, mid = WIDTH - LEFT - RIGHT, HEIGHT / 2
    body = [f'<line class="grid" x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{mid}" y2="{mid}"/>']
    for t in nice_ticks(0.0, span, 6):
        if t <= span:
            x = LEFT + t / span * plot_w
            body.append(f'<text class="tick" x="{x:.1f}" y="{mid + 28}" text-anchor="middle">+{_fmt(t)} s</text>')
    for i, (t, label, color) in enumerate(moments):
        x = LEFT + (t - t0) / span * plot_w
        body.append(f'<circle class="mark" data-label="{escape(label)}" cx="{x:.1f}" cy="{mid}" r="6" fill="{color}">'
                    f"<title>+{_fmt(t - t0)} s: {escape(label)}</title></circle>")
        if i in (0, len(moments) - 1):  # the first and last by name; every one in its tooltip and the events table
            anchor = "start" if i == 0 else "end"
            short = label if len(label) <= 32 else label[:31] + "…"
            y = mid - 14 if i == 0 else mid + 44
            body.append(f'<text class="tick" x="{x:.1f}" y="{y}" text-anchor="{anchor}">{escape(short)}</text>')
    return _frame(title, body, [], f"{len(moments)} events over {_fmt(span)} s")
