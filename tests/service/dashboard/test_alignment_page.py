"""The alignment page (`/dashboard/alignments/{id}`) against a live server, both backends: a queued run, then the
same run once it registered its base model with a manifest (and its per-step charts), and an older manifest
without per-step metrics."""

from __future__ import annotations

import uuid

import httpx

from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, log_in
from tests.service.dashboard.reports import STEP_METRICS, finish_alignment


def test_an_alignment_run_shows_progress_then_its_manifest(api: LiveAPI) -> None:
    admin = api.new_key(admin=True)
    name = f"align-{uuid.uuid4().hex[:8]}"
    started = httpx.post(f"{api.v1}/admin/base_models/align", json={"name": name, "max_steps": 3},
                         headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    with browser(api) as tab:
        assert log_in(tab, admin).status_code == 303
        assert f'href="/dashboard/alignments/{run_id}"' in tab.get("/dashboard").text
        queued = tab.get(f"/dashboard/alignments/{run_id}").text
        assert 'id="status">queued<' in queued and "No manifest until the run succeeds" in queued
        assert "not recorded" not in queued  # nothing to say about per-step metrics before there is a manifest
        assert 'getElementById("alignment")' in queued  # it follows the run until it ends

        final = {"step": 3, "lambda_t": 0.125, "loss_align": 1.5, "cos_align_harm": -0.2}
        manifest = {"name": name, "before": {"hs": 40.0, "benign_refusal_rate": 2.0},
                    "after": {"hs": 10.0, "benign_refusal_rate": 6.0}, "note": "<b>not markup</b>",
                    "final_metrics": final}  # fmt: skip
        finish_alignment(api, run_id, name, {**manifest, "step_metrics": STEP_METRICS})
        done = tab.get(f"/dashboard/alignments/{run_id}").text
    assert 'id="status">succeeded<' in done and 'getElementById("alignment")' not in done
    for label, value in (("HS (before)", "40"), ("HS (after)", "10"), ("over-refusal (before)", "2"),
                         ("over-refusal (after)", "6")):  # fmt: skip
        assert f'data-label="{label}" data-value="{value}"' in done, label
    assert "lambda_t" in done and "0.125" in done and "cos_align_harm" in done
    for title in ("λ_t per step", "Losses per step", "Gradient cosines per step"):
        assert f"<b>{title}</b>" in done, title
    for series in ("λ_t", "L_align", "L_sharp", "L_refusal", "cos(g_align, g_sharp)", "cos(g_align, g_refusal)"):
        assert f'<polyline class="mark" data-series="{series}" data-points="3"' in done, series
    assert "not recorded" not in done
    assert "&#34;lambda_t&#34;: [0.5, 0.25, 0.125]" in done  # the manifest shows each column on one line
    assert "&lt;b&gt;not markup&lt;/b&gt;" in done and "<b>not markup</b>" not in done
    with browser(api) as tab:
        assert log_in(tab, admin).status_code == 303
        assert tab.get("/dashboard/alignments/align-nope").status_code == 404


def test_a_manifest_without_per_step_metrics_keeps_the_final_step_table(api: LiveAPI) -> None:
    admin = api.new_key(admin=True)
    name = f"align-{uuid.uuid4().hex[:8]}"
    started = httpx.post(f"{api.v1}/admin/base_models/align", json={"name": name, "max_steps": 3},
                         headers={"Authorization": f"Bearer {admin}"})  # fmt: skip
    assert started.status_code == 202, started.text
    run_id = started.json()["id"]
    older = {"name": name, "final_metrics": {"step": 3, "lambda_t": 0.125}}  # a base aligned before step_metrics
    finish_alignment(api, run_id, name, older)
    with browser(api) as tab:
        assert log_in(tab, admin).status_code == 303
        page = tab.get(f"/dashboard/alignments/{run_id}").text
    assert "Per-step metrics were not recorded for this run" in page
    assert "lambda_t" in page and "0.125" in page  # the final step's table, as before
    assert 'id="per-step"' not in page and "<polyline" not in page
