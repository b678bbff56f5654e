"""API load on the distributed stack: job create, job list and events list at N concurrent clients, and keyset
pagination at 1k vs 100k jobs. Prints JSON.

    python bench/api_load.py [--clients 50] [--requests 6000] [--duration 120] [--jobs 100000]
                             [--server-workers 1] [--also-running "bench/safety.py"] [--save]

Starts a private PostgreSQL, Redis and S3 (moto) with tests/servers.py, migrates, registers the tiny test model
as base `tiny-aligned`, uploads a training file per org and starts `ftaas serve --workers N` against them on
loopback. Each client is an asyncio task on one shared httpx.AsyncClient that cycles create → list → events
(events of a job it created) until `--requests` requests in all or `--duration` seconds, whichever comes first.
No worker runs: created jobs stay queued and their messages wait in Redis, which is what the API sees in front of
a busy GPU fleet. Pagination: jobs are inserted in bulk through the ORM for one org, then `GET
/v1/fine_tuning/jobs?limit=20` is timed for the first page and for a deep page (`after=` a job within 100 of the
oldest end); O(limit) pagination keeps the two, and the 1k and 100k figures, close.
`--also-running` only records what else loaded the machine, since these are wall-clock figures; `load.cpu` says
where the CPU went (bench/cpu_split.py).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.cpu_split import cpu_split, machine, per_request  # noqa: E402
from service.auth import repository as auth_repository  # noqa: E402
from service.auth.service import create_key  # noqa: E402
from service.base_models import service as base_models  # noqa: E402
from service.config import Settings  # noqa: E402
from service.db import session_scope  # noqa: E402
from service.ids import new_id, now  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.orm import JobRow  # noqa: E402
from service.storage import S3ObjectStore, open_store  # noqa: E402
from tests import servers  # noqa: E402
from tests.live import ServerProcess, settings_env  # noqa: E402
from tests.service.helpers import jsonl  # noqa: E402
from worker.datasets.assets import tiny_model_dir  # noqa: E402

BASE = "tiny-aligned"
OUT = Path(__file__).parent / "results" / "api_load-cpu.json"


def distributed_settings(home: Path) -> Settings:
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto accepts any credentials; boto3 needs some
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    settings = Settings(
        env="dev",
        home=home,
        database_url=servers.start_postgres("ftaas_bench_load", dedicated=True),
        storage_url=f"s3://ftaas-load-{uuid.uuid4().hex[:8]}/objects",
        s3_endpoint_url=servers.start_moto(dedicated=True),
        broker_url=servers.start_redis(dedicated=True),
    )
    upgrade(settings.database_url)
    store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    assert isinstance(store, S3ObjectStore)
    store.ensure_bucket()
    with session_scope(settings.database_url) as session:
        base_models.register(session, store, name=BASE, path=str(tiny_model_dir(home / "tiny")), aligned=True)
    return settings


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


class Load:
    """Shared counters of one run: the request budget, the deadline, latencies and errors per operation."""

    def __init__(self, requests: int, duration: float) -> None:
        self.left = requests
        self.deadline = time.monotonic() + duration
        self.latency: dict[str, list[float]] = defaultdict(list)
        self.errors: dict[str, int] = defaultdict(int)
        self.statuses: dict[str, int] = defaultdict(int)
        self.sent: dict[str, int] = defaultdict(int)

    def take(self) -> bool:
        if self.left <= 0 or time.monotonic() >= self.deadline:
            return False
        self.left -= 1
        return True

    async def call(self, op: str, http: httpx.AsyncClient, method: str, url: str, **kw: Any) -> httpx.Response | None:
        self.sent[op] += 1
        start = time.perf_counter()
        try:
            r = await http.request(method, url, **kw)
        except httpx.HTTPError as exc:
            self.errors[op] += 1
            self.statuses[type(exc).__name__] += 1
            return None
        self.latency[op].append(time.perf_counter() - start)
        self.statuses[str(r.status_code)] += 1
        if r.status_code >= 400:
            self.errors[op] += 1
            return None
        return r


async def client(load: Load, http: httpx.AsyncClient, headers: dict[str, str], training_file: str) -> None:
    job_id: str | None = None
    while True:
        if not load.take():
            return
        r = await load.call(
            "create",
            http,
            "POST",
            "/v1/fine_tuning/jobs",
            headers=headers,
            json={"model": BASE, "training_file": training_file, "suffix": "load"},
        )
        job_id = r.json()["id"] if r is not None else job_id
        if not load.take():
            return
        await load.call("list", http, "GET", "/v1/fine_tuning/jobs?limit=20", headers=headers)
        if job_id is None or not load.take():
            continue
        await load.call("events", http, "GET", f"/v1/fine_tuning/jobs/{job_id}/events?limit=20", headers=headers)


async def run_load(base_url: str, keys: list[str], training: list[str], clients: int, requests: int, duration: float):  # type: ignore[no-untyped-def]
    load = Load(requests, duration)
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=60) as http:
        start = time.perf_counter()
        await asyncio.gather(
            *(
                client(load, http, {"Authorization": f"Bearer {keys[i % len(keys)]}"}, training[i % len(keys)])
                for i in range(clients)
            )
        )
        elapsed = time.perf_counter() - start
    return load, elapsed


def summary(load: Load, elapsed: float) -> dict[str, Any]:
    ops = {}
    for op in ("create", "list", "events"):
        ms = [s * 1000 for s in load.latency[op]]
        ops[op] = {
            "requests": load.sent[op],
            "errors": load.errors[op],
            "p50_ms": round(percentile(ms, 0.5) or 0, 1),
            "p99_ms": round(percentile(ms, 0.99) or 0, 1),
            "mean_ms": round(statistics.fmean(ms), 1) if ms else None,
        }
    done = sum(load.sent.values())
    return {
        "duration_s": round(elapsed, 2),
        "requests": done,
        "rps": round(done / elapsed, 1),
        "ops": ops,
        "errors": sum(load.errors.values()),
        "statuses": dict(load.statuses),
    }


def insert_jobs(database_url: str, org_id: str, count: int, training_file: str, batch: int = 5000) -> None:
    """`count` queued jobs for `org_id`, in bulk through the ORM (no HTTP: this only builds the table)."""
    for start in range(0, count, batch):
        with session_scope(database_url) as session:
            session.add_all(
                JobRow(
                    id=new_id("ftjob-"),
                    org_id=org_id,
                    model=BASE,
                    training_file=training_file,
                    status="queued",
                    hyperparameters={"n_epochs": 3, "batch_size": 4, "learning_rate_multiplier": 1.0},
                    method={"type": "supervised"},
                    seed=i,
                    created_at=now(),
                )
                for i in range(start, min(count, start + batch))
            )


def time_pages(base_url: str, key: str, reps: int = 30) -> dict[str, float]:
    """Median ms of the first page and of a deep page (after the job 100 from the oldest end)."""
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as http:
        first = http.get("/v1/fine_tuning/jobs?limit=20").json()
        anchor = first["data"][-1]["id"]
        after = None
        # Walk to the deep end with the largest pages the API allows; the walk itself is not timed.
        while True:
            page = http.get("/v1/fine_tuning/jobs", params={"limit": 100, **({"after": after} if after else {})}).json()
            if not page["has_more"]:
                break
            anchor, after = page["data"][-1]["id"], page["data"][-1]["id"]
        out = {}
        for name, params in (("first_page_ms", {"limit": 20}), ("deep_page_ms", {"limit": 20, "after": anchor})):
            times = []
            for _ in range(reps):
                start = time.perf_counter()
                assert http.get("/v1/fine_tuning/jobs", params=params).status_code == 200
                times.append((time.perf_counter() - start) * 1000)
            out[name] = round(statistics.median(times), 2)
        return out


def pagination(settings: Settings, base_url: str, sizes: list[int], training_file: str) -> dict[str, Any]:
    org = f"org-pages-{uuid.uuid4().hex[:6]}"
    with session_scope(settings.database_url) as session:
        key = create_key(session, org)
        org_id = auth_repository.get_or_create_org(session, org).id
    out, have = {}, 0
    for size in sizes:
        start = time.perf_counter()
        insert_jobs(settings.database_url, org_id, size - have, training_file)
        inserted = round(time.perf_counter() - start, 1)
        have = size
        out[str(size)] = {**time_pages(base_url, key), "insert_s": inserted}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--clients", type=int, default=50)
    ap.add_argument("--requests", type=int, default=6000, help="requests in all (create, list, events in turn)")
    ap.add_argument("--duration", type=float, default=120, help="stop after this many seconds at the latest")
    ap.add_argument("--orgs", type=int, default=5, help="clients are spread over this many orgs")
    ap.add_argument("--jobs", type=int, default=100_000, help="jobs in the big pagination table (small one: 1000)")
    ap.add_argument("--server-workers", type=int, default=1, help="`ftaas serve --workers`: uvicorn processes")
    ap.add_argument("--also-running", default=None, help="what else ran on the machine (recorded only)")
    ap.add_argument("--save", action="store_true", help="write bench/results/api_load-cpu.json")
    args = ap.parse_args()
    result: dict[str, Any] = {
        "bench": "api_load",
        "stack": f"postgresql + redis + s3 (moto), `ftaas serve --workers {args.server_workers}`",
        "clients": args.clients,
        "machine": machine(args.also_running),
    }
    with tempfile.TemporaryDirectory(prefix="ftaas-load-") as tmp:
        home = Path(tmp)
        try:
            settings = distributed_settings(home)
            server = ServerProcess(settings_env(settings), home / "serve.log", workers=args.server_workers)
            try:
                with session_scope(settings.database_url) as session:
                    keys = [create_key(session, f"org-load-{i}-{uuid.uuid4().hex[:6]}") for i in range(args.orgs)]
                training = [
                    httpx.post(
                        f"{server.base_url}/v1/files",
                        headers={"Authorization": f"Bearer {k}"},
                        files={"file": ("t.jsonl", jsonl(20))},
                        data={"purpose": "fine-tune"},
                    ).json()["id"]
                    for k in keys
                ]
                go = lambda: asyncio.run(  # noqa: E731
                    run_load(server.base_url, keys, training, args.clients, args.requests, args.duration)
                )
                (load, elapsed), cpu = cpu_split(server.proc.pid, go)
                result["load"] = summary(load, elapsed)
                result["load"]["cpu"] = per_request(cpu, result["load"]["requests"])
                sizes = sorted({min(1000, args.jobs), args.jobs})
                result["pagination"] = pagination(settings, server.base_url, sizes, training[0])
            finally:
                server.stop()
        finally:
            servers.stop_all()
    result["machine"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(result, indent=2)
    print(text)
    if args.save:
        OUT.write_text(text + "\n")


if __name__ == "__main__":
    main()
