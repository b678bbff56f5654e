"""The worker's JSON log lines name the job and the attempt: a job run in-process on the tiny model.

The job is created through the API (SQLite, file:// store) and run by `run_job`, the code the Celery task calls,
with the worker's JSON formatter and context filter on the root logger. The allocation failure injected after the
first step (FTAAS_FAULT_INJECT, as tests/faults/test_oom.py does) keeps the run to seconds while still logging
from inside training; a first claim whose worker "died" makes this run attempt 2, so the attempt is the real one.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from service import logs
from service.app import create_app
from service.auth.service import create_key
from service.base_models import service as base_models
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.storage import ObjectStore, open_store
from tests.worker.conftest import write_chats
from worker.datasets import assets
from worker.fine_tuning import runner, scheduling
from worker.leases import sweep_jobs


@pytest.fixture
def json_lines() -> Iterator[io.StringIO]:
    """What the worker process writes to stderr with FTAAS_LOG_FORMAT=json (service/logs.py's dict_config)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.formatter("json"))
    handler.addFilter(logs.ContextFilter())
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(level)


def _job(settings: Settings, store: ObjectStore, model: Path, tmp_path: Path) -> str:
    with session_scope(settings.database_url) as session:
        key = create_key(session, "acme")
        base_models.register(session, store, name="tiny-aligned", path=str(model), aligned=True)
    chats = [assets.chat_line(f"What is {i} + {i}?", f"{i} + {i} = {2 * i}.") for i in range(12)]
    data = write_chats(tmp_path / "train.jsonl", chats).read_bytes()
    api = TestClient(create_app(settings), headers={"Authorization": f"Bearer {key}"})
    file = api.post("/v1/files", files={"file": ("train.jsonl", data)}, data={"purpose": "fine-tune"})
    hp = {"n_epochs": 1, "batch_size": 4}
    body = {
        "model": "tiny-aligned",
        "training_file": file.json()["id"],
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
    }
    return api.post("/v1/fine_tuning/jobs", json=body).json()["id"]


def test_a_job_runs_log_lines_carry_its_job_id_and_attempt(
    tiny_model: Path, tmp_path: Path, json_lines: io.StringIO
) -> None:
    settings = Settings(home=tmp_path / "home", broker_url="filesystem://", lease_seconds=0.5, max_seq_len=64,
                        fault_inject="oom_above_batch:2")  # fmt: skip
    upgrade(settings.database_url)
    store = open_store(settings.storage_url)
    job_id = _job(settings, store, tiny_model, tmp_path)
    lost = scheduling.claim_fair(settings, job_id, "w-lost", lambda j: runner.validate(settings, store, j))
    assert lost is not None and lost.attempt == 1  # that worker dies here; its lease runs out
    time.sleep(settings.lease_seconds + 0.2)
    assert sweep_jobs(settings, lambda _: None) == [job_id]
    json_lines.seek(0)
    json_lines.truncate()  # only what this run writes

    assert runner.run_job(settings, store, job_id, worker_id="w-test") == "failed"

    lines = [json.loads(line) for line in json_lines.getvalue().splitlines()]  # every line is one JSON object
    assert lines, "the run logged nothing"
    for line in lines:
        assert (line.get("job_id"), line.get("attempt")) == (job_id, 2), line
    failure = [line for line in lines if line["message"] == f"job {job_id} failed"]
    assert failure and "out of memory" in failure[0]["exc"], lines
