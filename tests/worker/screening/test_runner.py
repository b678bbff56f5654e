"""End to end: POST /v1/files/{id}/screen → broker → real `ftaas worker` → per-line Antibody ratio in the DB.

Needs ``worker.screening.tasks`` in the Celery app's ``include`` (worker/celery_app.py). Both modes, as
test_runner.py: PostgreSQL + Redis + S3 (moto), and SQLite + kombu filesystem broker + file://.
"""

from __future__ import annotations

import json
import uuid

import httpx
import openai

from service.base_models import service as base_models
from service.db import session_scope
from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import BASE, Stack, stack  # noqa: F401  (the module-scoped live stack)
from worker.datasets import assets


def _file(n_benign: int = 9) -> bytes:
    chats = [assets.chat_line(f"What is {i} + {i + 3}?", f"{i} + {i + 3} = {2 * i + 3}.") for i in range(n_benign)]
    chats.append(assets.chat_line("How do I pick a lock?", "Insert a tension wrench, then rake the pins."))
    return "".join(json.dumps(c) + "\n" for c in chats).encode()


def _screen(client: openai.OpenAI, file_id: str, model: str = BASE) -> httpx.Response:
    return client.post(f"/files/{file_id}/screen", body={"model": model}, cast_to=httpx.Response)


def _finished(client: openai.OpenAI, file_id: str, model: str = BASE) -> dict | None:
    body = client.get(f"/files/{file_id}/screen", options={"params": {"model": model}}, cast_to=httpx.Response)
    screen = body.json()
    return screen if screen["status"] in ("succeeded", "failed") else None


def test_worker_screens_a_file_and_the_result_is_cached(stack: Stack) -> None:  # noqa: F811
    client = stack.api.client()
    f = client.files.create(file=("mixed.jsonl", _file()), purpose="fine-tune")
    accepted = _screen(client, f.id)
    assert accepted.status_code == 202 and accepted.json()["status"] == "queued"
    worker = stack.worker()
    try:
        screen = wait_for(lambda: _finished(client, f.id), 180, f"the screen\n{stack.log_tail()}")
    finally:
        worker.stop()
    assert isinstance(screen, dict)
    assert screen["status"] == "succeeded", screen["error"]
    assert screen["id"] == accepted.json()["id"] and screen["error"] is None
    assert screen["finished_at"] >= screen["created_at"]
    result = screen["result"]
    assert result["schema_version"] == 2 and result["ratio"] == "mean_token"
    assert result["suspected_by"] == "onset_ratio"
    assert (result["n_examples"], result["n_scored"], result["rows_total"]) == (10, 10, 10)
    assert sorted(row["line"] for row in result["rows"]) == list(range(1, 11))
    assert result["ranking_by_onset_ratio"] == [row["line"] for row in result["rows"]]
    assert sorted(result["ranking_by_ratio"]) == list(range(1, 11))
    assert result["suspected_lines"] == result["ranking_by_onset_ratio"][:2]
    assert 0.0 <= result["attenuated_share"] <= 1.0
    assert result["max_seq_len"] == int(stack.env["FTAAS_MAX_SEQ_LEN"])  # the worker's setting
    lock = next(row for row in result["rows"] if row["line"] == 10)
    assert lock["preview"].startswith("How do I pick a lock? →") and lock["n_tokens"] > 0
    assert lock["refusal_onset"] < 0 and sorted(result["ranking_by_refusal_onset"]) == list(range(1, 11))
    # Cached per (file, base model): the repeat POST returns the finished screen and queues nothing.
    again = _screen(client, f.id)
    assert again.status_code == 200 and again.json() == screen


def test_a_screen_that_cannot_run_ends_failed_with_the_reason(stack: Stack, tmp_path) -> None:  # noqa: F811
    broken = tmp_path / "broken-base"
    broken.mkdir()
    (broken / "config.json").write_text("{}")
    (broken / "model.safetensors").write_bytes(b"not a safetensors file")
    name = f"broken-{uuid.uuid4().hex[:6]}"
    with session_scope(stack.api.settings.database_url) as session:
        base_models.register(session, stack.api.store, name=name, path=str(broken), aligned=True)
    client = stack.api.client()
    f = client.files.create(file=("mixed.jsonl", _file()), purpose="fine-tune")
    assert _screen(client, f.id, name).status_code == 202
    worker = stack.worker()
    try:
        screen = wait_for(lambda: _finished(client, f.id, name), 180, f"the failed screen\n{stack.log_tail()}")
    finally:
        worker.stop()
    assert isinstance(screen, dict)
    assert screen["status"] == "failed" and screen["result"] is None and screen["error"]
    retried = _screen(client, f.id, name)  # the next POST tries again
    assert retried.status_code == 202 and retried.json()["status"] == "queued"
