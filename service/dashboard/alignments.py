"""The provider's page for one alignment run (Antibody's stage 1): progress, HS and over-refusal of the source
model before and of the aligned model after, per-step charts of λ_t, the three losses and the gradient cosines, the
final step's metrics and the manifest.

The per-step values are the manifest's ``step_metrics``: columns the worker writes (``{"step": [...], "lambda_t":
[...], ...}``, see worker/training/alignment_config.py's ``step_columns``). Bases aligned before it existed have
none; their page says so and keeps the final step's table (``final_metrics``)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from service.base_models import repository as base_models
from service.dashboard.charts import PALETTE, Bar, Rule, Series, bar_chart, finite, line_chart
from service.errors import NotFound
from service.orm import AlignmentRow


@dataclass
class AlignmentPage:
    run: AlignmentRow
    manifest: dict[str, Any]  # of the base model it registered; {} until it has
    manifest_json: str
    final_metrics: dict[str, Any]
    chart: Markup
    step_charts: list[Markup]  # [] when the manifest has no per-step metrics


def _number(section: Any, key: str) -> float | None:
    value = section.get(key) if isinstance(section, dict) else None
    return float(value) if isinstance(value, int | float) else None


def before_after(manifest: dict[str, Any]) -> Markup:
    """HS (lower is safer) and the refusal rate on benign prompts (over-refusal, lower is more useful)."""
    bars = []
    for key, label in (("hs", "HS"), ("benign_refusal_rate", "over-refusal")):
        for when, colour in (("before", PALETTE[5]), ("after", PALETTE[0])):
            value = _number(manifest.get(when), key)
            if value is not None:
                bars.append(Bar(f"{label} ({when})", value, colour))
    return bar_chart(bars, title="Before and after alignment", y_label="%")


def _columns(manifest: dict[str, Any]) -> dict[str, list[Any]]:
    """The manifest's ``step_metrics`` if they are columns with a ``step`` column; {} otherwise (older bases)."""
    cols = manifest.get("step_metrics")
    if not isinstance(cols, dict) or not isinstance(cols.get("step"), list):
        return {}
    return {k: v for k, v in cols.items() if isinstance(v, list)}


Line = tuple[str, str, str, bool]  # (column, legend, colour, dashed)
# (title, y label, reference lines, lines): the page's three per-step charts
STEP_CHARTS: tuple[tuple[str, str, tuple[Rule, ...], tuple[Line, ...]], ...] = (
    ("λ_t per step", "λ_t", (), (
        ("lambda_t", "λ_t", PALETTE[0], False),
        ("lambda_raw", "raw, before the EMA", PALETTE[5], True),
    )),
    ("Losses per step", "NLL per token", (), (
        ("loss_align", "L_align", PALETTE[0], False),
        ("loss_sharp", "L_sharp", PALETTE[1], False),
        ("loss_refusal", "L_refusal", PALETTE[2], False),
        ("loss_harm", "L_harm (at θ)", PALETTE[5], True),
    )),
    ("Gradient cosines per step", "cosine", (Rule(0.0, "0"),), (
        ("cos_align_sharp", "cos(g_align, g_sharp)", PALETTE[0], False),
        ("cos_align_harm", "cos(g_align, g_harm)", PALETTE[1], False),
        ("cos_align_refusal", "cos(g_align, g_refusal)", PALETTE[2], False),
    )),
)  # fmt: skip


def step_charts(manifest: dict[str, Any]) -> list[Markup]:
    """One line chart per group with any recorded value: an ``sft`` run (no flatness step) gets only the losses."""
    cols = _columns(manifest)
    steps = cols.get("step", [])
    charts = []
    for title, y_label, rules, lines in STEP_CHARTS:
        series = [Series(legend, list(zip(steps, cols[key], strict=False)), colour, dashed)
                  for key, legend, colour, dashed in lines if key in cols]  # fmt: skip
        if any(finite(s.points) for s in series):
            charts.append(line_chart(series, title=title, x_label="step", y_label=y_label, rules=rules))
    return charts


def manifest_text(manifest: dict[str, Any]) -> str:
    """The manifest as JSON, its per-step columns folded to one line each (charted above, not 500 lines a column)."""
    if not _columns(manifest):
        return json.dumps(manifest, indent=1, sort_keys=True)
    cols = manifest["step_metrics"]
    marker = "\u0000step_metrics\u0000"  # a placeholder no manifest holds, swapped for the folded columns
    text = json.dumps({**manifest, "step_metrics": marker}, indent=1, sort_keys=True)
    folded = "{\n" + ",\n".join(f"  {json.dumps(k)}: {json.dumps(v)}" for k, v in sorted(cols.items())) + "\n }"
    return text.replace(json.dumps(marker), folded, 1)


def alignment_page(session: Session, alignment_id: str) -> AlignmentPage:
    run = base_models.get_alignment(session, alignment_id)
    if run is None:
        raise NotFound(f"No such alignment run: {alignment_id}", param="alignment_id")
    base = base_models.get(session, run.name) if run.status == "succeeded" else None
    manifest = base.manifest if base is not None and isinstance(base.manifest, dict) else {}
    final = manifest.get("final_metrics")
    return AlignmentPage(
        run=run,
        manifest=manifest,
        manifest_json=manifest_text(manifest),
        final_metrics=final if isinstance(final, dict) else {},
        chart=before_after(manifest),
        step_charts=step_charts(manifest),
    )
