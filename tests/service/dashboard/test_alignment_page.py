"""The alignment page (`/dashboard/alignments/{id}`) against a live server, both backends: a queued run, then the
same run once it registered its base model with a manifest."""

from __future__ import annotations

import uuid

import httpx
from sqlalchemy import update

from service.base_models import service as base_models
from service.db import session_scope
from service.orm import AlignmentRow
from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, log_in


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
        assert 'getElementById("alignment")' in queued  # it follows the run until it ends

        final = {"step": 3, "lambda_t": 0.125, "loss_align": 1.5, "cos_align_harm": -0.2}
        manifest = {"name": name, "before": {"hs": 40.0, "benign_refusal_rate": 2.0},
                    "after": {"hs": 10.0, "benign_refusal_rate": 6.0}, "note": "<b>not markup</b>",
                    "final_metrics": final}  # fmt: skip
        with session_scope(api.settings.database_url) as session:
            base_models.register(session, api.store, name=name, path=str(api.model_dir), aligned=True,
                                 manifest=manifest)  # fmt: skip
            session.execute(update(AlignmentRow).where(AlignmentRow.id == run_id).values(status="succeeded", step=3,
                                                                                          total_steps=3))  # fmt: skip
        done = tab.get(f"/dashboard/alignments/{run_id}").text
    assert 'id="status">succeeded<' in done and 'getElementById("alignment")' not in done
    for label, value in (("HS (before)", "40"), ("HS (after)", "10"), ("over-refusal (before)", "2"),
                         ("over-refusal (after)", "6")):  # fmt: skip
        assert f'data-label="{label}" data-value="{value}"' in done, label
    assert "lambda_t" in done and "0.125" in done and "cos_align_harm" in done
    assert "&lt;b&gt;not markup&lt;/b&gt;" in done and "<b>not markup</b>" not in done
    with browser(api) as tab:
        assert log_in(tab, admin).status_code == 303
        assert tab.get("/dashboard/alignments/align-nope").status_code == 404
