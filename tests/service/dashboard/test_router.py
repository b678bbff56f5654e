"""The ops dashboard against a live server: the admin JSON snapshot and the browser page behind a cookie login.

No worker runs here, so a created job stays waiting (``validating_files``: a worker validates the file before it
moves the job to ``queued``) and its one message stays in the broker.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

import httpx
import openai
from sqlalchemy import update

from service.db import session_scope
from service.orm import JobRow
from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, csrf_token, log_in
from tests.service.helpers import upload
from worker import registry


def snapshot(api: LiveAPI, key: str | None = None) -> dict[str, Any]:
    r = httpx.get(f"{api.v1}/admin/dashboard", headers={"Authorization": f"Bearer {key or api.new_key(admin=True)}"})
    assert r.status_code == 200, r.text
    return r.json()


def waiting(body: dict[str, Any], queue: str) -> int | None:
    return {q["name"]: q["waiting"] for q in body["queues"]["queues"]}[queue]


def consumers(body: dict[str, Any], queue: str) -> int:
    return {q["name"]: q["live_workers"] for q in body["queues"]["queues"]}[queue]


def test_the_snapshot_is_for_admins_only(api: LiveAPI) -> None:
    url = f"{api.v1}/admin/dashboard"
    anonymous = httpx.get(url)
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    customer = httpx.get(url, headers={"Authorization": f"Bearer {api.new_key()}"})
    assert customer.status_code == 403 and customer.json()["error"]["type"] == "permission_error"
    body = snapshot(api)
    assert body["object"] == "admin.dashboard" and body["lease_seconds"] == api.settings.lease_seconds
    assert set(body) >= {"queues", "workers", "jobs", "alignments", "base_models", "screens_by_status"}
    queues = body["queues"]
    assert queues["broker"] == ("filesystem" if api.backend == "sqlite" else "redis") and queues["broker_error"] is None
    names = [q["name"] for q in queues["queues"]]
    assert names[0] == "gpu.default" and names[-1] == "webhooks"
    assert all(isinstance(q["waiting"], int) for q in queues["queues"])


def test_a_new_job_waits_with_its_message_in_the_queue(api: LiveAPI, gpu_base: tuple[str, str]) -> None:
    name, gpu_class = gpu_base
    org = f"org-{uuid.uuid4().hex[:8]}"
    client = api.client(api.new_key(org))
    before = snapshot(api)
    assert waiting(before, f"gpu.{gpu_class}") == 0
    assert {"name": name, "aligned": True, "gpu_class": gpu_class, "hs_before": 42.0, "hs_after": 6.0}.items() <= next(
        b for b in before["base_models"] if b["name"] == name
    ).items()

    job = client.fine_tuning.jobs.create(model=name, training_file=upload(client, 12).id)
    after = snapshot(api)
    newest = after["jobs"][0]
    assert (newest["id"], newest["org"], newest["model"], newest["status"]) == (job.id, org, name, "validating_files")
    assert newest["evaluation"] is None and newest["safety_gate_failed"] is False and newest["error_code"] is None
    assert waiting(after, f"gpu.{gpu_class}") == 1  # the one message published after commit
    counts = before["queues"]["jobs_by_status"]
    assert after["queues"]["jobs_by_status"]["validating_files"] == counts.get("validating_files", 0) + 1


def test_a_safety_gate_failure_carries_its_scores(api: LiveAPI, gpu_base: tuple[str, str]) -> None:
    client = api.client()
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    summary = {"hs": 30.0, "base_hs": 5.0, "fa": 80.0, "base_fa": 60.0, "attenuated_fraction": 0.1}
    error = {"code": "safety_evaluation_failed", "param": None, "message": "Safety evaluation failed: HS 30% > 10%"}
    with session_scope(api.settings.database_url) as session:
        session.execute(
            update(JobRow)
            .where(JobRow.id == job.id)
            .values(status="failed", evaluation=summary, error=error, trained_tokens=1234, finished_at=int(time.time()))
        )
    (row,) = [j for j in snapshot(api)["jobs"] if j["id"] == job.id]
    assert row["status"] == "failed" and row["safety_gate_failed"] is True
    assert row["evaluation"] == {"hs": 30.0, "base_hs": 5.0, "fa": 80.0, "base_fa": 60.0}
    assert (row["error_code"], row["trained_tokens"]) == ("safety_evaluation_failed", 1234)


def test_a_registered_worker_is_alive_then_stale(api: LiveAPI, gpu_base: tuple[str, str]) -> None:
    info = registry.WorkerInfo.this_process(f"w-{uuid.uuid4().hex[:6]}@test", f"default,{gpu_base[1]}")
    registry.beat(api.settings, info, "ftaas.process_job(ftjob-x)")
    client = api.client()
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    with session_scope(api.settings.database_url) as session:
        session.execute(update(JobRow).where(JobRow.id == job.id).values(status="running", worker_id=info.id))

    body = snapshot(api)
    (worker,) = [w for w in body["workers"] if w["id"] == info.id]
    assert worker["alive"] is True and worker["last_seen_age_s"] < 30
    assert (worker["gpu_classes"], worker["pid"]) == (["default", gpu_base[1]], info.pid)
    assert worker["current_task"] == "ftaas.process_job(ftjob-x)"
    assert worker["jobs"] == [{"id": job.id, "model": gpu_base[0], "status": "running"}]
    assert consumers(body, f"gpu.{gpu_base[1]}") == 1

    registry.beat(api.settings, info, at=time.time() - 2 * api.settings.lease_seconds - 5)  # it stopped beating
    body = snapshot(api)
    (worker,) = [w for w in body["workers"] if w["id"] == info.id]
    assert worker["alive"] is False and worker["last_seen_age_s"] > 2 * api.settings.lease_seconds
    assert consumers(body, f"gpu.{gpu_base[1]}") == 0  # nothing alive would take its messages


def test_browser_login_cookie_and_logout(api: LiveAPI, gpu_base: tuple[str, str]) -> None:
    client = api.client()
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    admin_key = api.new_key(admin=True)
    with browser(api) as tab:
        form = tab.get("/dashboard")
        assert form.status_code == 200 and 'name="api_key"' in form.text and "text/html" in form.headers["content-type"]
        token = csrf_token(form)

        wrong = tab.post("/dashboard/login", data={"api_key": "sk-not-a-key", "csrf_token": token})
        assert wrong.status_code == 401 and 'name="api_key"' in wrong.text and "Unknown or revoked" in wrong.text
        customer = tab.post("/dashboard/login", data={"api_key": api.new_key("acme"), "csrf_token": token})
        assert customer.status_code == 401 and "not an admin key" in customer.text and "acme" in customer.text
        assert "ftaas_dashboard" not in tab.cookies

        ok = tab.post("/dashboard/login", data={"api_key": admin_key, "csrf_token": token})
        assert ok.status_code == 303 and ok.headers["location"] == "/dashboard"
        cookie = next(c for c in ok.headers.get_list("set-cookie") if c.startswith("ftaas_dashboard="))
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/dashboard" in cookie
        assert "Secure" not in cookie  # FTAAS_PUBLIC_URL is http here; a browser would drop a Secure cookie
        assert admin_key not in cookie and admin_key not in ok.headers["location"]

        page = tab.get("/dashboard")
        assert page.status_code == 200 and job.id in page.text and gpu_base[0] in page.text
        assert "Log out" in page.text and page.headers["cache-control"] == "no-store"
        assert "frame-ancestors 'none'" in page.headers["content-security-policy"]

        out = tab.post("/dashboard/logout", data={"csrf_token": csrf_token(page)})
        assert out.status_code == 303 and "ftaas_dashboard" not in tab.cookies
        again = tab.get("/dashboard")
        assert again.status_code == 200 and 'name="api_key"' in again.text and job.id not in again.text

    forged = httpx.get(
        f"{api.base_url}/dashboard", cookies={"ftaas_dashboard": cookie.split(";")[0].split("=", 1)[1] + "0"}
    )
    assert forged.status_code == 401 and "log in again" in forged.text


def test_page_with_an_evaluated_job_renders_scores(
    api: LiveAPI, gpu_base: tuple[str, str], client: openai.OpenAI
) -> None:
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    summary = {"hs": 12.5, "base_hs": 10.0, "fa": 71.0, "base_fa": 55.0}
    with session_scope(api.settings.database_url) as session:
        session.execute(update(JobRow).where(JobRow.id == job.id).values(status="succeeded", evaluation=summary))
    with browser(api) as tab:
        assert log_in(tab, api.new_key(admin=True)).status_code == 303
        page = tab.get("/dashboard").text
    row = page[page.index(job.id) : page.index("</tr>", page.index(job.id))]
    assert "12.5%" in row and "10.0%" in row and "+2.5" in row and "71.0%" in row and "s-succeeded" in row
    assert "42.0%" in page and "6.0%" in page  # the base model's HS before and after alignment


def test_a_queued_alignment_shows_with_its_queue(api: LiveAPI) -> None:
    admin = api.new_key(admin=True)
    name, gpu_class = f"align-{uuid.uuid4().hex[:8]}", f"a{uuid.uuid4().hex[:8]}"
    started = httpx.post(
        f"{api.v1}/admin/base_models/align",
        json={"name": name, "max_steps": 3, "gpu_class": gpu_class},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert started.status_code == 202, started.text
    body = snapshot(api, admin)
    assert waiting(body, f"gpu.{gpu_class}") == 1  # no base model or worker names this class yet; the run does
    assert consumers(body, f"gpu.{gpu_class}") == 0
    (run,) = [a for a in body["alignments"] if a["id"] == started.json()["id"]]
    assert (run["name"], run["status"], run["step"], run["total_steps"], run["gpu_class"]) == (
        name,
        "queued",
        0,
        None,
        gpu_class,
    )
