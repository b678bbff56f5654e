"""GET /metrics scraped from a live API (SQLite + filesystem broker, PostgreSQL + S3 + Redis) and parsed as
Prometheus parses it. Each test starts its own server on the shared database with the metrics cache off, so request
counts start at zero and DB-derived values are read fresh."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update

from service.base_models import service as base_models
from service.db import session_scope
from service.ids import new_id
from service.metrics.repository import STARTED_MESSAGE
from service.orm import JobEventRow, JobRow
from tests.live import LiveAPI
from tests.service.helpers import upload
from worker import registry

JOB_ROUTE = "/v1/fine_tuning/jobs/{job_id}"


def scrape(base_url: str, **headers: str) -> dict[str, tuple[str, list]]:
    """{family name: (type, samples)} of one scrape."""
    r = httpx.get(f"{base_url}/metrics", headers=headers, timeout=30)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(r.text)}


def value(families: dict[str, tuple[str, list]], sample: str, **labels: str) -> float:
    """The value of the one sample named ``sample`` whose labels include ``labels``."""
    found = [
        s.value
        for _, samples in families.values()
        for s in samples
        if s.name == sample and labels.items() <= s.labels.items()
    ]
    assert len(found) == 1, (sample, labels, found)
    return found[0]


@pytest.fixture
def metrics_api(server: Callable[..., str]) -> Callable[..., str]:
    """Start another API on the same database, metrics cache off; returns its base URL (not /v1)."""
    return lambda **overrides: server(**{"metrics_cache_s": 0.0, **overrides}).removesuffix("/v1")


def test_requests_are_counted_by_route_template_never_by_raw_path(api: LiveAPI, metrics_api) -> None:
    base = metrics_api()
    auth = {"Authorization": f"Bearer {api.new_key()}"}
    for _ in range(2):
        missing = f"{base}/v1/fine_tuning/jobs/ftjob-nope{uuid.uuid4().hex[:6]}"
        assert httpx.get(missing, headers=auth).status_code == 404
    assert httpx.get(f"{base}/v1/models", headers=auth).status_code == 200
    assert httpx.get(f"{base}/no-such-{uuid.uuid4().hex}").status_code == 404
    too_deep = "[" * 1000 + "]" * 1000  # refused by the body guard before any route runs
    assert httpx.post(f"{base}/v1/fine_tuning/jobs", content=too_deep, headers=auth).status_code == 400

    families = scrape(base)
    assert families["ftaas_http_requests"][0] == "counter"
    assert families["ftaas_http_request_duration_seconds"][0] == "histogram"
    assert value(families, "ftaas_http_requests_total", route=JOB_ROUTE, method="GET", status="404") == 2
    assert value(families, "ftaas_http_requests_total", route="/v1/models", method="GET", status="200") == 1
    assert value(families, "ftaas_http_requests_total", route="unmatched", method="GET", status="404") == 1
    assert value(families, "ftaas_http_requests_total", route="/v1/fine_tuning/jobs", method="POST", status="400") == 1
    histogram = "ftaas_http_request_duration_seconds"
    assert value(families, f"{histogram}_count", route=JOB_ROUTE, method="GET") == 2
    assert value(families, f"{histogram}_bucket", route=JOB_ROUTE, method="GET", le="+Inf") == 2
    routes = {s.labels["route"] for s in families["ftaas_http_requests"][1]}
    assert not any("ftjob-nope" in r or "no-such" in r for r in routes), routes  # ids never become labels
    assert all(set(s.labels) == {"route", "method", "status"} for s in families["ftaas_http_requests"][1])


def _finished(api: LiveAPI, job_id: str, created: int, started: int, **values: object) -> None:
    with session_scope(api.settings.database_url) as session:
        session.execute(update(JobRow).where(JobRow.id == job_id).values(created_at=created, **values))
        session.add(
            JobEventRow(id=new_id("ftevent-"), job_id=job_id, created_at=started, message=STARTED_MESSAGE, data={})
        )


def test_jobs_workers_queues_and_distributions_come_from_the_database(api: LiveAPI, metrics_api) -> None:
    name, gpu_class, org = (f"m-{uuid.uuid4().hex[:8]}", f"c{uuid.uuid4().hex[:8]}", f"org-{uuid.uuid4().hex[:8]}")
    with session_scope(api.settings.database_url) as session:
        base_models.register(session, api.store, name=name, path=str(api.model_dir), aligned=True, gpu_class=gpu_class)
    client = api.client(api.new_key(org))
    good, gated, running, waiting = (
        client.fine_tuning.jobs.create(model=name, training_file=upload(client, 12).id).id for _ in range(4)
    )
    now = int(time.time())
    _finished(
        api, good, now - 100, now - 80, status="succeeded", finished_at=now, trained_tokens=8000,
        evaluation={"hs": 12.5, "base_hs": 10.0, "fa": 71.0, "base_fa": 55.0},
    )
    gate = {"code": "safety_evaluation_failed", "param": None, "message": "Safety evaluation failed: HS 30% > 10%"}
    _finished(
        api, gated, now - 50, now - 45, status="failed", finished_at=now, trained_tokens=100, error=gate,
        evaluation={"hs": 30.0, "base_hs": 10.0, "fa": 55.0, "base_fa": 55.0},
    )
    info = registry.WorkerInfo.this_process(f"w-{uuid.uuid4().hex[:6]}@metrics", gpu_class)
    registry.beat(api.settings, info, f"ftaas.process_job({running})")
    with session_scope(api.settings.database_url) as session:
        session.execute(update(JobRow).where(JobRow.id == running).values(status="running", worker_id=info.id))
    # The 4 jobs above are the newest, so a 4-job window holds exactly them.
    families = scrape(metrics_api(metrics_recent_jobs=4))

    assert families["ftaas_jobs"][0] == "gauge"
    for status in ("succeeded", "failed", "running", "validating_files"):
        assert value(families, "ftaas_jobs", status=status, org=org) == 1
    assert value(families, "ftaas_safety_gate_failures_total", model=name) == 1
    assert value(families, "ftaas_queue_waiting_messages", queue=f"gpu.{gpu_class}") == 4  # none taken
    assert value(families, "ftaas_queue_live_workers", queue=f"gpu.{gpu_class}") == 1
    assert value(families, "ftaas_broker_up") == 1 and value(families, "ftaas_metrics_db_up") == 1
    assert value(families, "ftaas_worker_up", worker=info.id) == 1
    assert 0 <= value(families, "ftaas_worker_heartbeat_age_seconds", worker=info.id) < 30
    assert value(families, "ftaas_worker_job", worker=info.id, job=running) == 1
    assert waiting not in {s.labels.get("job") for s in families["ftaas_worker_job"][1]}

    def bucket(family: str, le: str) -> float:
        assert families[family][0] == "histogram"  # a gauge histogram, exposed in the 0.0.4 text format
        return value(families, f"{family}_bucket", le=le)

    assert (bucket("ftaas_job_queue_seconds", "+Inf"), bucket("ftaas_job_queue_seconds", "10.0")) == (2, 1)  # 20 s, 5 s
    assert value(families, "ftaas_job_queue_seconds_gsum") == 25
    assert value(families, "ftaas_job_run_seconds_gsum") == 80 + 45
    assert bucket("ftaas_job_training_tokens_per_second", "+Inf") == 1  # only the succeeded one: 8000 / 80 s
    assert value(families, "ftaas_job_training_tokens_per_second_gsum") == 100
    hs = "ftaas_job_eval_harmful_score_ratio"
    assert (bucket(hs, "0.1"), bucket(hs, "0.2"), bucket(hs, "0.3"), bucket(hs, "+Inf")) == (0, 1, 2, 2)
    assert value(families, "ftaas_job_eval_accuracy_ratio_gsum") == pytest.approx(0.71 + 0.55)
    for family in ("ftaas_screens", "ftaas_alignments", "ftaas_job_evaluations"):
        assert families[family][0] == "gauge"


def test_alignments_by_status_and_the_cache(api: LiveAPI, metrics_api) -> None:
    base = metrics_api(metrics_cache_s=60.0)

    def queued_alignments() -> float:
        families = scrape(base)
        return sum(s.value for s in families["ftaas_alignments"][1] if s.labels["status"] == "queued")

    before = queued_alignments()
    started = httpx.post(
        f"{api.v1}/admin/base_models/align",
        json={"name": f"align-{uuid.uuid4().hex[:8]}", "max_steps": 3, "gpu_class": f"a{uuid.uuid4().hex[:8]}"},
        headers={"Authorization": f"Bearer {api.new_key(admin=True)}"},
    )
    assert started.status_code == 202, started.text
    assert queued_alignments() == before  # within metrics_cache_s a scrape reads nothing
    fresh = scrape(metrics_api())  # a server that reads the DB on every scrape sees it
    assert sum(s.value for s in fresh["ftaas_alignments"][1] if s.labels["status"] == "queued") == before + 1


def test_metrics_access_open_admin_or_off(api: LiveAPI, metrics_api) -> None:
    doc = httpx.get(f"{api.base_url}/openapi.json").json()
    assert "/metrics" not in doc["paths"] and not any(p.startswith("/v1/metrics") for p in doc["paths"])
    guarded = metrics_api(metrics_access="admin")
    anonymous = httpx.get(f"{guarded}/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "invalid_api_key"
    assert httpx.get(f"{guarded}/metrics", headers={"Authorization": f"Bearer {api.new_key()}"}).status_code == 403
    assert "ftaas_jobs" in scrape(guarded, Authorization=f"Bearer {api.new_key(admin=True)}")
    off = metrics_api(metrics_access="off")
    assert httpx.get(f"{off}/metrics").status_code == 404


MULTIPROCESS = """
import sys
from fastapi.testclient import TestClient
from service.app import create_app
from service.config import Settings
home, requests = sys.argv[1], int(sys.argv[2])
with TestClient(create_app(Settings(env="dev", home=home))) as client:
    for _ in range(requests):
        client.get("/healthz")
    sys.stdout.write(client.get("/metrics").text)
"""


def test_several_server_processes_share_their_counts(tmp_path, api: LiveAPI) -> None:
    """`ftaas serve --workers N`: counts go to prometheus_client's multiprocess files; any process shows them all."""
    if api.backend != "sqlite":
        pytest.skip("one backend is enough: this runs its own SQLite app")
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    (tmp_path / "prometheus").mkdir()
    for requests in (2, 1):  # two processes, one after the other; the second one's scrape shows both
        run = [sys.executable, "-c", MULTIPROCESS, str(tmp_path / "home"), str(requests)]
        out = subprocess.run(run, env=env, capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr[-2000:]
    families = {f.name: f for f in text_string_to_metric_families(out.stdout)}
    (healthz,) = [s for s in families["ftaas_http_requests"].samples if s.labels.get("route") == "/healthz"]
    assert healthz.value == 3 and len(list((tmp_path / "prometheus").glob("counter_*.db"))) == 2
