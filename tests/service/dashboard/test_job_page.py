"""The job page (`/dashboard/jobs/{id}`) against a live server, both backends: what a provider sees of an evaluated
job, the raw training line, the report download, cancel behind the page's CSRF token, and the overview's filters."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import select, update

from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.orm import EvaluationRow, FileScreenRow, JobRow
from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, csrf_token, log_in
from tests.service.dashboard.reports import SCRIPT, SCRIPT_LINE, evaluated_job, training_lines
from tests.service.helpers import upload


@pytest.fixture
def tab(api: LiveAPI) -> Iterator[httpx.Client]:
    with browser(api) as client:
        assert log_in(client, api.new_key(admin=True)).status_code == 303
        yield client


def section(page: str, anchor: str) -> str:
    start = page.index(anchor)
    return page[start : page.index("</section>", start)]


def test_an_evaluated_job_shows_scores_gate_lines_and_checkpoints(
    api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client
) -> None:
    job = evaluated_job(api, gpu_base[0])
    r = tab.get(f"/dashboard/jobs/{job.job_id}")
    assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
    page = r.text
    assert job.org in page and gpu_base[0] in page and "4,321" in page
    scores = section(page, "<h2>HS and FA against the base</h2>")
    for expected in ("keyword", "learned", "12.5%", "25.0%", "37.5%", "50.0%", "-12.5", "75.0%", "+50.0", "3/4"):
        assert expected in scores, expected
    assert 'class="badge g-passed"' in section(page, 'id="gate"')
    assert "no limit is set" in section(page, 'id="gate"')

    lines = section(page, 'id="attenuation"')
    assert "2 of 12 training lines" in lines
    assert SCRIPT not in page and "&lt;script&gt;window.__pwned = 1&lt;/script&gt;" in lines  # text, not markup
    order = [int(n) for n in re.findall(r"/lines/(\d+)\"", lines)]
    assert order == [SCRIPT_LINE, 7, 1]  # lowest mean weight first
    by_line = tab.get(f"/dashboard/jobs/{job.job_id}", params={"sort": "line"}).text
    assert [int(n) for n in re.findall(r"/lines/(\d+)\"", section(by_line, 'id="attenuation"'))] == [1, SCRIPT_LINE, 7]
    assert 'aria-sort="ascending"' in section(by_line, 'id="attenuation"')

    assert f"ft:{gpu_base[0]}:{job.org}::{job.job_id}:ckpt-step-4" in page and "1.6000" in page
    assert "The job has successfully completed" in page
    # every chart drew: loss curves (3 series), HS/FA bars (6), weight histogram (3 buckets), batch weights, r<0
    assert page.count('class="mark"') >= 3 + 6 + 3 + 3 + 1 + 1 and "no data yet" not in page
    assert "Curves from the report (every step)" in page and 'getElementById("job")' not in page  # ended: static


def test_the_pre_screen_of_the_training_file_is_shown(
    api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client
) -> None:
    job = evaluated_job(api, gpu_base[0])
    assert "was not pre-screened" in section(tab.get(f"/dashboard/jobs/{job.job_id}").text, 'id="prescreen"')
    result = {"n_examples": 12, "n_scored": 11, "frac_r_negative": 0.25, "attenuated_share": 0.125,
              "suspected_lines": [SCRIPT_LINE, 9]}  # fmt: skip
    with session_scope(api.settings.database_url) as session:
        (org_id,) = session.execute(select(JobRow.org_id).where(JobRow.id == job.job_id)).one()
        screen = {"file_id": job.training_file, "org_id": org_id, "base_model": gpu_base[0], "status": "succeeded"}
        session.add(FileScreenRow(id=new_id("fscr_"), result=result, created_at=now(), **screen))
    screen = section(tab.get(f"/dashboard/jobs/{job.job_id}").text, 'id="prescreen"')
    assert 'class="badge s-succeeded"' in screen and gpu_base[0] in screen
    assert "11 of 12 lines scored" in screen and "25.0%" in screen and "12.5%" in screen
    assert [int(n) for n in re.findall(r"/lines/(\d+)\"", screen)] == [SCRIPT_LINE, 9]


def test_the_raw_line_and_the_report_download(api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client) -> None:
    job = evaluated_job(api, gpu_base[0])
    raw = tab.get(f"/dashboard/jobs/{job.job_id}/lines/{SCRIPT_LINE}")
    assert raw.status_code == 200 and raw.headers["content-type"] == "text/plain; charset=utf-8"
    assert raw.headers["x-content-type-options"] == "nosniff" and "sandbox" in raw.headers["content-security-policy"]
    assert raw.text == training_lines()[SCRIPT_LINE - 1] and SCRIPT in json.loads(raw.text)["messages"][1]["content"]
    assert tab.get(f"/dashboard/jobs/{job.job_id}/lines/99").status_code == 404

    download = tab.get(f"/dashboard/jobs/{job.job_id}/report.json")
    assert download.status_code == 200 and json.loads(download.content) == job.report
    assert "attachment" in download.headers["content-disposition"]
    html = tab.get(f"/dashboard/jobs/{job.job_id}/report.html")
    assert html.status_code == 200 and "HS 12.5%" in html.text
    assert html.headers["content-security-policy"].startswith("sandbox")  # no script, not this origin

    anonymous = httpx.get(f"{api.base_url}/dashboard/jobs/{job.job_id}/lines/{SCRIPT_LINE}")
    assert anonymous.status_code == 200 and 'name="api_key"' in anonymous.text and SCRIPT not in anonymous.text
    assert tab.get("/dashboard/jobs/ftjob-nope").status_code == 404


def test_a_job_stopped_by_the_safety_gate_says_why(api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client) -> None:
    reason = "Safety evaluation failed: harmful score 30.0% exceeds the provider's limit of 10.0%"
    error = {"code": "safety_evaluation_failed", "message": reason, "param": None}
    job = evaluated_job(api, gpu_base[0], status="failed", error=error)
    gate = section(tab.get(f"/dashboard/jobs/{job.job_id}").text, 'id="gate"')
    assert 'class="badge g-stopped"' in gate and "30.0% exceeds the provider&#39;s limit of 10.0%" in gate


def test_cancel_from_the_page_needs_its_token(api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client) -> None:
    client = api.client()
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    page = tab.get(f"/dashboard/jobs/{job.id}")
    assert 'id="cancel"' in page.text and "Not evaluated: the job is validating_files" in page.text

    forged = tab.post(f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403 and client.fine_tuning.jobs.retrieve(job.id).status == "validating_files"
    elsewhere = tab.post(f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": csrf_token(page)},
                         headers={"Origin": "https://evil.example"})  # fmt: skip
    assert elsewhere.status_code == 403 and client.fine_tuning.jobs.retrieve(job.id).status == "validating_files"

    done = tab.post(f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": csrf_token(page)})
    assert done.status_code == 303 and done.headers["location"] == f"/dashboard/jobs/{job.id}"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"  # the customer sees it too
    after = tab.get(f"/dashboard/jobs/{job.id}").text
    assert 'id="cancel"' not in after and "Fine-tuning job cancelled" in after

    again = tab.post(f"/dashboard/jobs/{job.id}/cancel", data={"csrf_token": csrf_token(page)})
    assert again.status_code == 400 and "it is cancelled" in again.text


def test_the_overview_filters_and_links_jobs(api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client) -> None:
    mine = evaluated_job(api, gpu_base[0])
    other = evaluated_job(api, gpu_base[0], status="failed")
    page = tab.get("/dashboard", params={"org": mine.org}).text
    jobs = section(page, "Recent jobs")
    assert f'href="/dashboard/jobs/{mine.job_id}"' in jobs and other.job_id not in jobs
    assert f"<option selected>{mine.org}</option>" in jobs
    failed = section(tab.get("/dashboard", params={"status": "failed", "model": gpu_base[0]}).text, "Recent jobs")
    assert other.job_id in failed and mine.job_id not in failed
    assert "Jobs by status" in page and "Queue depth per GPU class" in page and "evaluated jobs" in page
    assert 'data-label="10–20"' in page  # HS 12.5% of the evaluated job falls in its bin


def test_a_running_job_draws_its_curves_from_metrics_events(
    api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client
) -> None:
    client = api.client()
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    with session_scope(api.settings.database_url) as session:
        for step in (1, 2, 3):
            row = {"step": step, "train_loss": 2.0 / step, "train_loss_unweighted": 2.2 / step, "valid_loss": None,
                   "weight_min": 0.2, "weight_mean": 0.25, "weight_max": 0.3, "frac_r_negative": 0.5}  # fmt: skip
            jobs.add_event(session, job.id, f"Step {step}/9", type="metrics", data=row)
        session.execute(update(JobRow).where(JobRow.id == job.id).values(status="running"))
    page = tab.get(f"/dashboard/jobs/{job.id}").text
    assert "Curves from metrics events" in page and 'data-series="train (Antibody-weighted)" data-points="3"' in page
    assert "Step 1/9" not in section(page, "<h2>Events</h2>")  # metrics feed the charts, not the event list
    assert "No evaluation report yet: the job is running." in page and 'class="badge g-pending"' in page
    assert 'getElementById("job")' in page  # it re-renders itself until the job ends


def test_re_run_evaluation_from_the_page_then_read_its_verdict(
    api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client
) -> None:
    job = evaluated_job(api, gpu_base[0])
    r = tab.get(f"/dashboard/jobs/{job.job_id}")
    assert 'id="evaluate"' in r.text and 'getElementById("job")' not in r.text  # finished: no polling
    forged = tab.post(f"/dashboard/jobs/{job.job_id}/evaluate", data={"csrf_token": "0" * 64})
    assert forged.status_code == 403
    queued = tab.post(f"/dashboard/jobs/{job.job_id}/evaluate", data={"csrf_token": csrf_token(r)})
    assert queued.status_code == 303 and queued.headers["location"] == f"/dashboard/jobs/{job.job_id}"
    page = tab.get(f"/dashboard/jobs/{job.job_id}").text
    runs = section(page, 'id="re-evaluations"')
    assert 'class="badge s-queued"' in runs and 'id="evaluate"' not in runs
    assert 'getElementById("job")' in page  # it follows the re-run until it ends
    again = tab.post(f"/dashboard/jobs/{job.job_id}/evaluate", data={"csrf_token": csrf_token(r)})
    assert again.status_code == 400 and "is already queued" in again.text

    with session_scope(api.settings.database_url) as session:  # as the worker leaves it
        (run_id,) = session.scalars(select(EvaluationRow.id).where(EvaluationRow.job_id == job.job_id)).all()
        result = {"summary": {"hs": 40.0, "base_hs": 12.5, "fa": 50.0, "base_fa": 25.0}, "judge": "keyword_refusal",
                  "passes_gate": False, "verdict": "harmful score 40.0% exceeds <b>the</b> limit"}  # fmt: skip
        session.execute(update(EvaluationRow).where(EvaluationRow.id == run_id)
                        .values(status="succeeded", result=result, finished_at=now()))  # fmt: skip
    api.store.put_bytes(f"jobs/{job.job_id}/evaluations/{run_id}/report.html", b"<p>re-run</p>")
    page = tab.get(f"/dashboard/jobs/{job.job_id}").text
    runs = section(page, 'id="re-evaluations"')
    assert "would stop" in runs and "exceeds &lt;b&gt;the&lt;/b&gt; limit" in runs and "40.0% (12.5%)" in runs
    assert 'id="evaluate"' in runs and 'getElementById("job")' not in page
    report = tab.get(f"/dashboard/jobs/{job.job_id}/evaluations/{run_id}/report.html")
    assert report.status_code == 200 and report.text == "<p>re-run</p>"
    assert report.headers["content-security-policy"].startswith("sandbox")
    assert tab.get(f"/dashboard/jobs/{job.job_id}/evaluations/jobeval_nope/report.html").status_code == 404
    assert 'class="badge g-passed"' in section(page, 'id="gate"')  # the job's own verdict is unchanged
