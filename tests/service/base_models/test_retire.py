"""Retiring a base model through the admin API (both backends): customers can start nothing new on it, what was
built on it keeps working, and reinstating it offers it again. Each test retires a base of its own: the live server
is shared, and a retired `tiny-aligned` would fail every later test."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest
import redis
import uvicorn
from fastapi import FastAPI

from service.base_models import repository
from service.base_models import service as base_models
from service.db import session_scope
from service.ids import now
from service.orm import FineTunedModelRow, JobRow
from tests import servers
from tests.live import LiveAPI
from tests.service.helpers import error_of, http_error, upload


def admin(api: LiveAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.new_key(admin=True)}"}


def fresh_base(api: LiveAPI, gpu_class: str = "default") -> str:
    name = f"retire-{uuid.uuid4().hex[:8]}"
    with session_scope(api.settings.database_url) as session:
        base_models.register(session, api.store, name=name, path=str(api.model_dir), aligned=True, gpu_class=gpu_class)
    return name


def post(api: LiveAPI, headers: dict[str, str], name: str, action: str) -> httpx.Response:
    return httpx.post(f"{api.v1}/admin/base_models/{name}/{action}", headers=headers)


def messages_for(api: LiveAPI, gpu_class: str, object_id: str) -> int:
    """How many broker messages on ``gpu_class``'s queue name ``object_id`` (nobody consumes them here)."""
    queue = f"gpu.{gpu_class}"
    if api.settings.broker_url.startswith("filesystem"):
        bodies = [p.read_text(errors="replace") for p in api.settings.broker_dir.glob(f"*.{queue}.msg")]
    else:
        bodies = [b.decode() for b in redis.Redis.from_url(api.settings.broker_url).lrange(queue, 0, -1)]
    return sum(object_id in b for b in bodies)


def refused(fn: Callable[..., object], **kwargs: object) -> dict:
    with pytest.raises(openai.BadRequestError) as e:
        fn(**kwargs)
    return error_of(e.value)


def test_a_retired_base_takes_no_new_jobs_until_reinstated(api: LiveAPI, client: openai.OpenAI) -> None:
    gpu = f"c{uuid.uuid4().hex[:8]}"
    name, headers = fresh_base(api, gpu), admin(api)
    other = fresh_base(api)
    train = upload(client, 40).id
    before = client.fine_tuning.jobs.create(model=name, training_file=train)

    r = post(api, headers, name, "retire")
    assert r.status_code == 200, r.text
    assert r.json()["name"] == name and isinstance(r.json()["retired_at"], int)
    err = refused(client.fine_tuning.jobs.create, model=name, training_file=train)
    assert (err["param"], err["code"]) == ("model", "model_retired")
    assert "retired" in err["message"] and other in err["message"]  # says what to use instead
    err = refused(client.post, path=f"/files/{train}/screen", body={"model": name}, cast_to=httpx.Response)
    assert (err["param"], err["code"]) == ("model", "model_retired")  # no new pre-screen either
    assert name not in {m.id for m in client.models.list()} and other in {m.id for m in client.models.list()}
    with pytest.raises(openai.NotFoundError) as e:
        client.models.retrieve(name)
    assert error_of(e.value)["code"] == "model_retired"
    listed = httpx.get(f"{api.v1}/admin/base_models", headers=headers).json()["data"]
    assert [b["retired_at"] for b in listed if b["name"] == name] == [r.json()["retired_at"]]

    # The job created before still runs its course: paused and resumed, it goes back to its base's GPU queue.
    assert client.fine_tuning.jobs.pause(before.id).status == "paused"
    assert client.fine_tuning.jobs.resume(before.id).status == "queued"
    assert messages_for(api, gpu, before.id) == 2  # created, then resumed

    back = post(api, headers, name, "reinstate")
    assert back.status_code == 200 and back.json()["retired_at"] is None
    assert client.fine_tuning.jobs.create(model=name, training_file=train).model == name
    assert name in {m.id for m in client.models.list()}


def test_retiring_twice_keeps_the_first_time_and_unknown_names_are_404(api: LiveAPI) -> None:
    name, headers = fresh_base(api), admin(api)
    with session_scope(api.settings.database_url) as session:
        repository.set_retired(session, name, 1_000)  # long ago: a second retire must not move it to now
    again = post(api, headers, name, "retire")
    assert again.status_code == 200 and again.json()["retired_at"] == 1_000
    assert post(api, headers, name, "reinstate").json()["retired_at"] is None
    assert post(api, headers, name, "reinstate").json()["retired_at"] is None  # reinstating an offered base: no-op
    for action in ("retire", "reinstate"):
        err = http_error(post(api, headers, "no-such-base", action), 404)
        assert err["param"] == "name" and "no-such-base" in err["message"]
        customer = {"Authorization": f"Bearer {api.new_key()}"}
        assert post(api, customer, name, action).status_code == 403


def test_registering_or_aligning_a_retired_name_does_not_put_it_back_on_offer(api: LiveAPI) -> None:
    name, headers = fresh_base(api), admin(api)
    retired_at = post(api, headers, name, "retire").json()["retired_at"]
    body = {"name": name, "path": str(api.model_dir), "aligned": True}
    replaced = httpx.post(f"{api.v1}/admin/base_models", json=body, headers=headers)
    assert replaced.status_code == 200 and replaced.json()["retired_at"] == retired_at
    align = {"name": name, "max_steps": 1, "gpu_class": f"c{uuid.uuid4().hex[:8]}"}
    err = http_error(httpx.post(f"{api.v1}/admin/base_models/align", json=align, headers=headers))
    assert (err["param"], err["code"]) == ("name", "model_retired") and "reinstate" in err["message"]

    post(api, headers, name, "reinstate")
    assert httpx.post(f"{api.v1}/admin/base_models/align", json=align, headers=headers).status_code == 202


@pytest.fixture
def canned_backend() -> Iterator[str]:
    """An inference backend (vLLM's protocol) that loads any adapter and answers every completion."""
    app = FastAPI()
    app.post("/v1/load_lora_adapter")(lambda: {})
    completion = {
        "id": "chatcmpl-r",
        "object": "chat.completion",
        "created": 1,
        "model": "m",
        "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    }
    app.post("/v1/chat/completions")(lambda: completion)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=servers.free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    yield f"http://127.0.0.1:{server.config.port}"
    server.should_exit = True
    thread.join(10)


def test_models_fine_tuned_on_a_retired_base_are_still_served(
    api: LiveAPI, client: openai.OpenAI, server: Callable[..., str], canned_backend: str
) -> None:
    name = fresh_base(api)
    job = client.fine_tuning.jobs.create(model=name, training_file=upload(client, 40).id)
    tuned = f"ft:{name}:org:r:{job.id}"
    with session_scope(api.settings.database_url) as session:
        org = session.query(JobRow).filter_by(id=job.id).one().org_id
        session.add(FineTunedModelRow(id=tuned, org_id=org, job_id=job.id, base_model=name,
                                      adapter_prefix=f"jobs/{job.id}/adapter/", created_at=now()))  # fmt: skip
    post(api, admin(api), name, "retire")
    serving = openai.OpenAI(api_key=client.api_key, base_url=server(inference_backends={"*": canned_backend}),
                            max_retries=0)  # fmt: skip
    ask = {"messages": [{"role": "user", "content": "Hello"}], "max_tokens": 4}
    assert serving.chat.completions.create(model=tuned, **ask).choices[0].message.content == "Hi."
    with pytest.raises(openai.NotFoundError) as e:
        serving.chat.completions.create(model=name, **ask)
    assert (error_of(e.value)["param"], error_of(e.value)["code"]) == ("model", "model_retired")
    err = refused(client.fine_tuning.jobs.create, model=tuned, training_file=job.training_file)
    assert err["code"] == "model_retired" and tuned in err["message"]  # no new job continuing it either
