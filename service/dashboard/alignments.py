"""The provider's page for one alignment run (Antibody's stage 1): progress, HS and over-refusal of the source
model before and of the aligned model after, the final step's metrics and the whole manifest.

Per-step metrics (λ_t, the three losses, the cosines) are not on it: the worker keeps them only in memory and in its
checkpoints, and publishes just the last step's (``final_metrics`` in the manifest)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup
from sqlalchemy.orm import Session

from service.base_models import repository as base_models
from service.dashboard.charts import PALETTE, Bar, bar_chart
from service.errors import NotFound
from service.orm import AlignmentRow


@dataclass
class AlignmentPage:
    run: AlignmentRow
    manifest: dict[str, Any]  # of the base model it registered; {} until it has
    manifest_json: str
    final_metrics: dict[str, Any]
    chart: Markup


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
        manifest_json=json.dumps(manifest, indent=1, sort_keys=True),
        final_metrics=final if isinstance(final, dict) else {},
        chart=before_after(manifest),
    )
