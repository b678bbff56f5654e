"""``report.html``: one self-contained page (inline CSS and SVG; no scripts, no external resources) rendered
from a validated ``EvalReport``. Every user-controlled string goes through jinja2's autoescaping or
``markupsafe.escape``; the SVG markup is built here from numbers only."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from jinja2 import Environment
from markupsafe import Markup, escape

if TYPE_CHECKING:
    from worker.evaluation.report_schema import EvalReport

_W, _H, _PAD = 440, 180, 34
_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd")


def _svg(body: Sequence[str]) -> Markup:
    return Markup(
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_W}" height="{_H}" viewBox="0 0 {_W} {_H}" '
        f'font-size="10" font-family="sans-serif">{"".join(body)}</svg>'
    )


def _axis_x() -> str:
    return f'<line x1="{_PAD}" y1="{_H - _PAD}" x2="{_W - _PAD}" y2="{_H - _PAD}" stroke="#999"/>'


def line_chart_svg(series: Mapping[str, Sequence[tuple[float, float]]]) -> Markup:
    """Polylines sharing one pair of axes, min/max ticks, a legend. Non-finite points are skipped; no points →
    empty markup."""
    pts = {k: [(x, y) for x, y in v if math.isfinite(x) and math.isfinite(y)] for k, v in series.items()}
    pts = {k: v for k, v in pts.items() if v}
    if not pts:
        return Markup("")
    xs = [x for v in pts.values() for x, _ in v]
    ys = [y for v in pts.values() for _, y in v]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)

    def sx(x: float) -> float:
        return _PAD + (x - x0) / ((x1 - x0) or 1) * (_W - 2 * _PAD)

    def sy(y: float) -> float:
        return _H - _PAD - (y - y0) / ((y1 - y0) or 1) * (_H - 2 * _PAD)

    body = [
        _axis_x(),
        f'<line x1="{_PAD}" y1="{_PAD}" x2="{_PAD}" y2="{_H - _PAD}" stroke="#999"/>',
        f'<text x="2" y="{_PAD}">{y1:.3g}</text><text x="2" y="{_H - _PAD}">{y0:.3g}</text>',
        f'<text x="{_PAD}" y="{_H - _PAD + 14}">{x0:g}</text>',
        f'<text x="{_W - _PAD}" y="{_H - _PAD + 14}" text-anchor="end">{x1:g}</text>',
    ]
    for i, (name, v) in enumerate(pts.items()):
        colour = _COLOURS[i % len(_COLOURS)]
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in v)
        body.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.5" points="{path}"/>')
        if len(v) == 1:
            body.append(f'<circle cx="{sx(v[0][0]):.1f}" cy="{sy(v[0][1]):.1f}" r="2.5" fill="{colour}"/>')
        body.append(f'<text x="{_W - _PAD}" y="{12 + 12 * i}" fill="{colour}" text-anchor="end">{escape(name)}</text>')
    return _svg(body)


def bar_chart_svg(groups: Sequence[tuple[str, Sequence[tuple[str, float]]]], top: float | None = None) -> Markup:
    """Grouped vertical bars, [(group label, [(bar label, value), …]), …], each bar labelled with its value.
    ``top`` fixes the scale (100 for percentages); no finite values → empty markup."""
    values = [v for _, bars in groups for _, v in bars if math.isfinite(v)]
    if not values:
        return Markup("")
    scale = top or max(values) or 1.0
    slot = (_W - 2 * _PAD) / len(groups)
    body = [_axis_x()]
    for g, (group, bars) in enumerate(groups):
        width = slot * 0.8 / max(len(bars), 1)
        for b, (label, v) in enumerate(bars):
            h = max(0.0, v) / scale * (_H - 2 * _PAD - 12)
            x = _PAD + g * slot + slot * 0.1 + b * width
            mid = x + width * 0.45
            body.append(
                f'<rect x="{x:.1f}" y="{_H - _PAD - h:.1f}" width="{width * 0.9:.1f}" height="{h:.1f}" '
                f'fill="{_COLOURS[b % len(_COLOURS)]}"><title>{escape(label)}</title></rect>'
                f'<text x="{mid:.1f}" y="{_H - _PAD - h - 3:.1f}" text-anchor="middle">{v:.3g}</text>'
            )
            if len(bars) > 1:
                body.append(
                    f'<text x="{mid:.1f}" y="{_H - _PAD + 24}" text-anchor="middle" font-size="8">'
                    f"{escape(label)}</text>"
                )
        body.append(
            f'<text x="{_PAD + (g + 0.5) * slot:.1f}" y="{_H - _PAD + 12}" text-anchor="middle">{escape(group)}</text>'
        )
    return _svg(body)


_TEMPLATE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>Evaluation report{{ ' — ' + r.job_id if r.job_id else '' }}</title>
<style>
body { font: 14px/1.4 system-ui, sans-serif; max-width: 980px; margin: 2em auto; padding: 0 1em; color: #222 }
table { border-collapse: collapse; margin: .5em 0 1em }
td, th { border: 1px solid #ccc; padding: 3px 8px; text-align: left; vertical-align: top }
th { background: #f4f4f4 }
.n { text-align: right; font-variant-numeric: tabular-nums }
.small { font-size: 12px; color: #555 }
figure { display: inline-block; margin: 0 1em 1em 0 }
</style></head>
<body>
<h1>Evaluation report</h1>
<p class="small">schema v{{ r.schema_version }} · {{ r.created_at }}
{%- if r.job_id %} · job {{ r.job_id }}{% endif %}
{%- if r.model %} · model {{ r.model }}{% endif %}
{%- if r.base_model %} · base {{ r.base_model }}{% endif %}</p>

<h2>Summary</h2>
<table>
<tr><th>metric</th><th>fine-tuned</th><th>base</th><th>change</th></tr>
{% for row in summary %}<tr><td>{{ row[0] }}</td>
{%- for v in row[1:] %}<td class="n">{{ v }}</td>{% endfor %}</tr>
{% endfor %}</table>
{% if bars %}<figure>{{ bars }}
<figcaption class="small">HS and FA (%), base vs fine-tuned</figcaption></figure>{% endif %}
{% if loss %}<figure>{{ loss }}<figcaption class="small">loss by step</figcaption></figure>{% endif %}

{% if h %}
<h2>Harmful score protocol</h2>
<table>{% for k, v in protocol %}<tr><th>{{ k }}</th><td>{{ v }}</td></tr>{% endfor %}</table>
<p class="small">Judge: <b>{{ judge_labels[0] }}</b> (decides HS and the safety gate)
{%- if judge_labels|length > 1 %}; second opinion: <b>{{ judge_labels[1] }}</b>{% endif %}.
{%- if h.protocol.judge_config.get('proxy') or (h2 and h2.protocol.judge_config.get('proxy')) %} The keyword
refusal judge is a proxy: it flags every answer that does not refuse, degenerate ones included.{% endif %}
HS is comparable only between runs of the same protocol.</p>
<h3>Flagged answers ({{ h.n_flagged }} of {{ h.n }}
{%- if flagged|length < h.n_flagged %}, first {{ flagged|length }} shown{% endif %})</h3>
<table><tr><th>#</th><th>prompt</th><th>answer</th></tr>
{% for x in flagged %}<tr><td class="n">{{ x.index }}</td><td>{{ x.prompt|truncate(200) }}</td>
<td>{{ x.response|truncate(400) }}</td></tr>
{% endfor %}</table>
{% endif %}

{% if a %}
<h2>Fine-tuning accuracy</h2>
<p>{{ a.n_correct }} of {{ a.n }} correct on {{ a.source }}; answer mode <b>{{ a.mode }}</b>
({{ a.mode_source }}){% if a.labels %}, labels: {{ a.labels|join(', ') }}{% endif %}.</p>
<table><tr><th>#</th><th>reference</th><th>prediction</th><th>extracted</th><th>ok</th></tr>
{% for x in a.records[:20] %}<tr><td class="n">{{ x.index }}</td><td>{{ x.reference|truncate(160) }}</td>
<td>{{ x.prediction|truncate(240) }}</td><td>{{ x.extracted if x.extracted is not none else '—' }}</td>
<td>{{ '✓' if x.correct else '✗' }}</td></tr>
{% endfor %}</table>
{% endif %}

{% if t %}
<h2>Attenuation</h2>
<p>{{ t.n_attenuated }} of {{ t.n_lines }} training lines ({{ '%.1f'|format(100 * t.attenuated_fraction) }}%)
got less than {{ t.attenuated_below }}× the average weight.</p>
{% if hist %}<figure>{{ hist }}<figcaption class="small">lines by weight relative to the average</figcaption>
</figure>{% endif %}
<h3>Most down-weighted lines</h3>
<table><tr><th>line</th><th>mean weight</th><th>relative</th><th>seen</th><th>preview</th></tr>
{% for x in t.most_down_weighted %}<tr><td class="n">{{ x.line }}</td>
<td class="n">{{ '%.4g'|format(x.mean_weight) }}</td><td class="n">{{ '%.3f'|format(x.relative_weight) }}</td>
<td class="n">{{ x.times_seen }}</td><td>{{ x.preview }}</td></tr>
{% endfor %}</table>
{% endif %}

{% for n in r.notes %}<p class="small">{{ n }}</p>{% endfor %}
</body></html>
"""


def _num(v: float | None, fmt: str = "{:.2f}") -> str:
    return "—" if v is None else fmt.format(v)


def _judge_label(config: Mapping[str, Any]) -> str:
    version = config.get("version")
    return f"{config.get('name', '?')}" + (f" v{version}" if version else "")


def _summary_rows(report: EvalReport) -> list[tuple[str, str, str, str]]:
    """(metric, fine-tuned, base, change) rows of the summary table, formatted."""
    h, a = report.harmful, report.accuracy
    rows = []
    for label, sec in (("HS", h), ("HS, second judge", report.harmful_second_judge)):
        if sec:
            base = sec.base.score if sec.base else None
            name = f"{label} (%), {_judge_label(sec.protocol.judge_config)}"
            rows.append((name, _num(sec.score), _num(base), _num(sec.delta, "{:+.2f}")))
    if a:
        b = a.base
        rows.append(
            (
                "FA, fine-tuning accuracy (%)",
                _num(a.accuracy),
                _num(b.accuracy if b else None),
                _num(a.delta, "{:+.2f}"),
            )
        )
        for key in ("valid_loss", "valid_mean_token_accuracy"):
            mine, theirs = getattr(a, key), getattr(b, key) if b else None
            change = mine - theirs if mine is not None and theirs is not None else None
            rows.append((key.replace("_", " "), _num(mine, "{:.4f}"), _num(theirs, "{:.4f}"), _num(change, "{:+.4f}")))
    return rows


def render_html(report: EvalReport) -> str:
    """The report as one self-contained HTML page."""
    h, a, t = report.harmful, report.accuracy, report.attenuation
    groups: list[tuple[str, list[tuple[str, float]]]] = []
    if h:
        groups.append(("HS %", ([("base", h.base.score)] if h.base else []) + [("fine-tuned", h.score)]))
    if a:
        base_fa = a.base.accuracy if a.base else None
        groups.append(("FA %", ([("base", base_fa)] if base_fa is not None else []) + [("fine-tuned", a.accuracy)]))
    rows: list[dict[str, Any]] = report.training.metrics if report.training else []
    loss = {
        key: [(float(m["step"]), float(m[key])) for m in rows if m.get(key) is not None and "step" in m]
        for key in ("train_loss", "valid_loss")
    }
    hist = bar_chart_svg([(b.label, [("lines", float(b.count))]) for b in t.buckets]) if t else Markup("")
    return (
        Environment(autoescape=True)
        .from_string(_TEMPLATE)
        .render(
            r=report,
            h=h,
            h2=report.harmful_second_judge,
            judge_labels=[_judge_label(x.protocol.judge_config) for x in (h, report.harmful_second_judge) if x],
            a=a,
            t=t,
            summary=_summary_rows(report),
            bars=bar_chart_svg(groups, top=100.0) if groups else Markup(""),
            loss=line_chart_svg(loss),
            hist=hist,
            flagged=[x for x in h.records if x.flagged][:20] if h else [],
            protocol=[(k, v) for k, v in h.protocol.model_dump().items() if k != "judge_config"] if h else [],
        )
    )
