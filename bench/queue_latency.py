"""Queue latency: seconds from `jobs.create` returning to the job being `running`, with an idle worker.

    python bench/queue_latency.py [--jobs 5]

Runs both modes on a tiny random model: embedded (SQLite, kombu filesystem broker, file:// store) and
distributed (PostgreSQL, Redis, S3 via moto; the servers are started like the test suite starts them).
The first job of each mode is reported separately (it pays the worker's first tokenizer load).
Each mode waits for the worker's `ready.` log line first, so every job meets an idle worker.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from service.config import Settings  # noqa: E402
from service.migrate import upgrade  # noqa: E402
from service.storage import S3ObjectStore  # noqa: E402
from tests import servers  # noqa: E402
from tests.live import LiveAPI, WorkerProcess, serve, settings_env, wait_for  # noqa: E402
from worker.datasets.assets import tiny_model_dir  # noqa: E402

ROWS = "".join(
    json.dumps(
        {"messages": [{"role": "user", "content": f"{i}+{i}?"}, {"role": "assistant", "content": str(2 * i)}]}
    )
    + "\n"
    for i in range(12)
).encode()


def measure(mode: str, home: Path, model: Path, n_jobs: int) -> dict:
    if mode == "embedded":
        settings = Settings(home=home, broker_url="filesystem://")
    else:
        import os

        os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
        os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
        settings = Settings(
            home=home,
            database_url=servers.start_postgres("bench"),
            broker_url=servers.start_redis(),
            storage_url=f"s3://bench-{uuid.uuid4().hex[:8]}/o",
            s3_endpoint_url=servers.start_moto(),
        )
    upgrade(settings.database_url)
    base_url, server, thread = serve(settings)
    store = server.config.app.state.store
    if isinstance(store, S3ObjectStore):
        store.ensure_bucket()
    api = LiveAPI(mode, base_url, settings, store, model)
    api.register_base("tiny")
    client = api.client()
    worker = WorkerProcess(settings_env(settings), home / "worker.log")
    latencies = []
    try:
        file_id = client.files.create(file=("t.jsonl", ROWS), purpose="fine-tune").id
        wait_for(lambda: b" ready." in (home / "worker.log").read_bytes(), 120, "an idle worker")
        for _ in range(n_jobs):
            job = client.fine_tuning.jobs.create(
                model="tiny", training_file=file_id, hyperparameters={"n_epochs": 1, "batch_size": 4}
            )
            start = time.perf_counter()
            wait_for(
                lambda j=job.id: (
                    client.fine_tuning.jobs.retrieve(j).status != "validating_files"
                    and client.fine_tuning.jobs.retrieve(j).status != "queued"
                ),
                120,
                "running",
                interval=0.01,
            )
            latencies.append(time.perf_counter() - start)
            wait_for(lambda j=job.id: client.fine_tuning.jobs.retrieve(j).status == "succeeded", 120, "done")
    finally:
        worker.stop()
        server.should_exit = True
        thread.join(10)
    warm = latencies[1:] or latencies
    return {
        "mode": mode,
        "first_job_s": round(latencies[0], 3),
        "warm_median_s": round(statistics.median(warm), 3),
        "warm_max_s": round(max(warm), 3),
        "jobs": len(latencies),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=5)
    args = ap.parse_args()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model = tiny_model_dir(Path(tmp) / "tiny")
        for mode in ("embedded", "distributed"):
            home = Path(tmp) / mode
            home.mkdir()
            results.append(measure(mode, home, model, args.jobs))
    servers.stop_all()
    print(json.dumps({"bench": "queue_latency", "goal_s": 1.0, "results": results}, indent=2))


if __name__ == "__main__":
    main()
