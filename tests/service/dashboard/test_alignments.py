"""The alignment page's per-step charts and manifest text, from manifests as the worker writes them (no server)."""

from __future__ import annotations

import json

from service.dashboard.alignments import manifest_text, step_charts
from tests.service.dashboard.reports import STEP_METRICS


def test_an_sft_run_gets_only_the_losses_chart() -> None:
    (chart,) = step_charts({"step_metrics": {"step": [1, 2], "loss_align": [1.0, 0.5]}})
    assert "<b>Losses per step</b>" in chart and 'data-series="L_align" data-points="2"' in chart


def test_missing_or_malformed_step_metrics_draw_no_chart() -> None:
    for manifest in ({}, {"step_metrics": "x"}, {"step_metrics": {"lambda_t": [1.0]}}, {"step_metrics": {"step": 3}}):
        assert step_charts(manifest) == [], manifest
    assert step_charts({"step_metrics": {"step": [1, 2], "lambda_t": [None, float("nan")]}}) == []


def test_the_manifest_text_folds_each_column_to_one_line_and_stays_the_same_json() -> None:
    manifest = {"name": "a", "step_metrics": STEP_METRICS, "z": {"b": [1, 2]}}
    text = manifest_text(manifest)
    assert json.loads(text) == manifest
    assert '  "step": [1, 2, 3]' in text.splitlines() and "   2" in text.splitlines()  # other lists stay indented
