"""File pre-screen API (`POST/GET /v1/files/{id}/screen`) against a live server, without a worker.

Nothing runs the screen here, so it must stay `queued`; the worker-side state changes are driven through
``worker.leases`` directly, as ``worker/screening/tasks.py`` does.
"""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai
import pytest
import redis

from service.db import session_scope
from service.files import repository as files
from service.files import screening
from service.orm import FileScreenRow
from tests.live import LiveAPI
from tests.service.helpers import error_of, jsonl, upload
from worker import leases

BASE = "tiny-aligned"


@pytest.fixture(autouse=True)
def _bases(api: LiveAPI) -> None:
    api.register_base(BASE)
    api.register_base("tiny-unaligned", aligned=False)


def post(client: openai.OpenAI, file_id: str, model: str) -> httpx.Response:
    return client.post(f"/files/{file_id}/screen", body={"model": model}, cast_to=httpx.Response)


def get(client: openai.OpenAI, file_id: str, model: str | None = None) -> httpx.Response:
    query = {"model": model} if model else {}
    return client.get(f"/files/{file_id}/screen", options={"params": query}, cast_to=httpx.Response)


def published(api: LiveAPI, screen_id: str) -> bool:
    """Whether an `ftaas.screen_file` message for this screen sits in the broker (nobody consumes it here)."""
    if api.settings.broker_url.startswith("filesystem"):
        bodies = [p.read_text(errors="replace") for p in api.settings.broker_dir.glob("*.msg")]
    else:
        bodies = [b.decode() for b in redis.Redis.from_url(api.settings.broker_url).lrange("gpu.default", 0, -1)]
    return any(screen_id in b and "ftaas.screen_file" in b for b in bodies)


def test_screen_is_queued_once_and_cached(api: LiveAPI, client: openai.OpenAI) -> None:
    f = upload(client, 12)
    first = post(client, f.id, BASE)
    assert first.status_code == 202
    body: dict[str, Any] = first.json()
    assert body["id"].startswith("fscr_") and body["object"] == "file.screen"
    assert (body["file_id"], body["model"], body["status"]) == (f.id, BASE, "queued")
    assert body["result"] is None and body["error"] is None and body["finished_at"] is None
    assert isinstance(body["created_at"], int)
    assert published(api, body["id"])
    again = post(client, f.id, BASE)
    assert again.status_code == 202 and again.json() == body  # cached per (file, base model)
    assert get(client, f.id, BASE).json() == body
    assert get(client, f.id).json() == body  # without ?model=: the file's latest screen
    with session_scope(api.settings.database_url) as session:
        rows = session.query(FileScreenRow).filter_by(file_id=f.id).all()
        assert [(r.id, r.status) for r in rows] == [(body["id"], "queued")]  # no worker: it never starts


def test_worker_transitions_show_through_the_api(api: LiveAPI, client: openai.OpenAI) -> None:
    f = upload(client, 12)
    screen_id = post(client, f.id, BASE).json()["id"]
    attempt = leases.claim_run(api.settings, FileScreenRow, screen_id, "w1")
    assert attempt == 1
    assert leases.claim_run(api.settings, FileScreenRow, screen_id, "w2") is None  # a second delivery: nothing
    with session_scope(api.settings.database_url) as session:
        key, base = files.screen_inputs(session, screen_id)
        assert key == f"files/{f.id}.jsonl" and base is not None and base.name == BASE
    running = post(client, f.id, BASE)
    assert running.status_code == 202 and running.json()["status"] == "running"
    result = {"schema_version": screening.RESULT_SCHEMA, "suspected_lines": [3], "attenuated_share": 0.1}
    assert leases.finish_run(api.settings, FileScreenRow, screen_id, attempt, result=result)
    done = post(client, f.id, BASE)
    assert done.status_code == 200  # finished: the cached result, nothing new accepted
    body = done.json()
    assert (body["id"], body["status"], body["result"], body["error"]) == (screen_id, "succeeded", result, None)
    assert body["finished_at"] >= body["created_at"]
    assert get(client, f.id, BASE).json() == body


def test_failed_screen_is_retried_by_the_next_post(api: LiveAPI, client: openai.OpenAI) -> None:
    f = upload(client, 12)
    screen_id = post(client, f.id, BASE).json()["id"]
    attempt = leases.claim_run(api.settings, FileScreenRow, screen_id, "w1")
    assert leases.finish_run(api.settings, FileScreenRow, screen_id, attempt, error="RuntimeError: out of memory")
    failed = get(client, f.id, BASE).json()
    assert (failed["status"], failed["error"], failed["result"]) == ("failed", "RuntimeError: out of memory", None)
    retried = post(client, f.id, BASE)
    assert retried.status_code == 202
    assert (retried.json()["id"], retried.json()["status"], retried.json()["error"]) == (screen_id, "queued", None)


def test_a_result_of_an_older_schema_is_recomputed_by_the_next_post(api: LiveAPI, client: openai.OpenAI) -> None:
    f = upload(client, 12)
    screen_id = post(client, f.id, BASE).json()["id"]
    attempt = leases.claim_run(api.settings, FileScreenRow, screen_id, "w1")
    old = {"schema_version": screening.RESULT_SCHEMA - 1, "suspected_lines": [3], "attenuated_share": 0.1}
    assert leases.finish_run(api.settings, FileScreenRow, screen_id, attempt, result=old)
    assert get(client, f.id, BASE).json()["result"] == old  # a GET shows what there is
    again = post(client, f.id, BASE)
    assert again.status_code == 202
    assert (again.json()["id"], again.json()["status"], again.json()["result"]) == (screen_id, "queued", None)


def test_the_service_expects_the_workers_screen_schema() -> None:
    from worker.evaluation.prescreen import SCHEMA_VERSION

    assert screening.RESULT_SCHEMA == SCHEMA_VERSION


def test_another_orgs_file_is_404(api: LiveAPI, client: openai.OpenAI) -> None:
    f = upload(client, 12)
    post(client, f.id, BASE)
    other = api.client()
    for call in (lambda: post(other, f.id, BASE), lambda: get(other, f.id, BASE), lambda: post(other, "file-x", BASE)):
        with pytest.raises(openai.NotFoundError) as e:
            call()
        assert error_of(e.value)["param"] == "id"


def test_bad_requests_are_400_with_named_params(api: LiveAPI, client: openai.OpenAI) -> None:
    f = upload(client, 12)
    for model in ("gpt-4o-mini", "tiny-unaligned"):
        with pytest.raises(openai.BadRequestError) as e:
            post(client, f.id, model)
        assert (error_of(e.value)["param"], error_of(e.value)["code"]) == ("model", "model_not_available")
    bad = jsonl(12).replace(b'"role": "user"', b'"role": "bot"', 1)
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    (errored,) = [x for x in client.files.list() if x.filename == "bad.jsonl"]
    with pytest.raises(openai.BadRequestError) as e:
        post(client, errored.id, BASE)
    err = error_of(e.value)
    assert (err["param"], err["code"]) == ("file_id", "invalid_file") and "error" in err["message"]
    r = httpx.post(
        f"{api.v1}/files/{f.id}/screen",
        content=json.dumps({"modle": BASE}),
        headers={"Authorization": f"Bearer {client.api_key}", "Content-Type": "application/json"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "model"
    with pytest.raises(openai.NotFoundError) as e:
        get(client, f.id, BASE)  # never screened on this model
    assert error_of(e.value)["param"] == "model"
