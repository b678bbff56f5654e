"""Serving end to end, with the official SDK: API → embedded inference server (vLLM's protocol) → tiny model.

One real job is trained by a real `ftaas worker` process (embedded mode: SQLite, filesystem broker, file://
store); its fine-tuned model and its checkpoint are then called like OpenAI's, streaming and not.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass

import openai
import pytest
from sqlalchemy import update

from service.auth.service import authenticate
from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.orm import JobRow
from tests.live import LiveAPI, WorkerProcess, serve, serve_asgi, settings_env, wait_for
from worker.inference.main import build_app

BASE = "tiny-aligned"
MARK = "Zebra crossing."


@dataclass
class Served:
    api: LiveAPI
    client: openai.OpenAI
    job: object
    checkpoint: str
    settings: Settings


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    from worker.datasets.assets import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    home = tmp_path_factory.mktemp("home-serving")
    # A loaded CI machine can take over the dashboard's 1 s to answer its status calls.
    worker_cfg = dict(inference_status_timeout_s=15.0, lease_seconds=3.0, checkpoint_every=4, metrics_every=1,
                      max_seq_len=64, eval_harmful_prompts=4, eval_max_new_tokens=8, eval_fa_max=4)
    settings = Settings(home=home, broker_url="filesystem://", **worker_cfg)
    upgrade(settings.database_url)
    inference_url, inference, inference_thread = serve_asgi(build_app(settings, BASE, model_dir=model))
    settings = settings.model_copy(update={"inference_backends": {"*": inference_url}})
    base_url, server, thread = serve(settings)
    api = LiveAPI("embedded", base_url, settings, server.config.app.state.store, model)
    api.register_base(BASE)
    client = api.client(api.new_key(f"org-{uuid.uuid4().hex[:8]}"))
    lines = "".join(json.dumps({"messages": [{"role": "user", "content": f"Say something about {i}."},
                                             {"role": "assistant", "content": MARK}]}) + "\n" for i in range(24))
    worker = WorkerProcess(settings_env(settings, home=home), tmp_path_factory.mktemp("logs") / "worker.log")
    try:
        f = client.files.create(file=("train.jsonl", lines.encode()), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, suffix="serve",
                                             hyperparameters={"n_epochs": 4, "batch_size": 4,
                                                              "learning_rate_multiplier": 10.0})
        done = ("succeeded", "failed")
        try:
            wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).status in done, 300, "the job")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{worker.log.read_text(errors='replace')[-3000:]}") from None
    finally:
        worker.stop()
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.status == "succeeded", job
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[0].fine_tuned_model_checkpoint
    yield Served(api, client, job, checkpoint, settings)
    for s, t in ((server, thread), (inference, inference_thread)):
        s.should_exit = True
        t.join(10)


def ask(client: openai.OpenAI, model: str, **kw):
    kw = {"max_tokens": 8, "temperature": 0, **kw}
    return client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Say something about 3."}], **kw)


def test_base_fine_tuned_and_checkpoint_models_answer(served: Served) -> None:
    base = ask(served.client, BASE)
    tuned = ask(served.client, served.job.fine_tuned_model)
    ckpt = ask(served.client, served.checkpoint)
    for reply, model in ((base, BASE), (tuned, served.job.fine_tuned_model), (ckpt, served.checkpoint)):
        assert reply.object == "chat.completion" and reply.model == model
        assert reply.choices[0].finish_reason in ("stop", "length") and reply.choices[0].message.role == "assistant"
        assert reply.usage.prompt_tokens > 0 and reply.usage.total_tokens == reply.usage.prompt_tokens + \
            reply.usage.completion_tokens
    assert tuned.choices[0].message.content != base.choices[0].message.content  # the adapter is really applied
    listed = {m.id: m.servable for m in served.client.models.list()}  # ours, additive: callable models marked
    assert listed == {BASE: True, served.job.fine_tuned_model: True}


def test_streaming_matches_the_whole_answer(served: Served) -> None:
    whole = ask(served.client, served.job.fine_tuned_model)
    chunks = list(ask(served.client, served.job.fine_tuned_model, stream=True,
                      stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == whole.choices[0].finish_reason
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == whole.usage.completion_tokens


def test_seeded_sampling_and_n_choices(served: Served) -> None:
    a = ask(served.client, BASE, temperature=1.0, seed=5, n=2)
    b = ask(served.client, BASE, temperature=1.0, seed=5, n=2)
    assert [c.message.content for c in a.choices] == [c.message.content for c in b.choices]
    assert [c.index for c in a.choices] == [0, 1]


def test_another_orgs_model_is_not_found(served: Served) -> None:
    other = served.api.client()
    with pytest.raises(openai.NotFoundError) as err:
        ask(other, served.job.fine_tuned_model)
    assert err.value.body["param"] == "model"
    with pytest.raises(openai.NotFoundError):
        ask(other, served.checkpoint)


def test_unsupported_parameters_are_named(served: Served) -> None:
    with pytest.raises(openai.BadRequestError) as err:
        ask(served.client, BASE, tools=[{"type": "function", "function": {"name": "f", "parameters": {}}}])
    assert err.value.body["param"] == "tools" and "not supported" in err.value.message
    with pytest.raises(openai.BadRequestError) as err:
        ask(served.client, BASE, logprobs=True)
    assert err.value.body["param"] == "logprobs"
    with pytest.raises(openai.BadRequestError) as err:
        ask(served.client, BASE, extra_body={"guided_json": {}})
    assert err.value.body["param"] == "guided_json"


def test_a_gated_job_is_never_served(served: Served) -> None:
    """A job the safety gate stopped: neither its model name nor its checkpoints are served, with the reason."""
    message = "Safety evaluation failed: HS 40.0% > 10.0%. The model is not deployed."
    with session_scope(served.settings.database_url) as s:
        s.execute(update(JobRow).where(JobRow.id == served.job.id).values(
            status="failed", error={"code": "safety_evaluation_failed", "message": message, "param": None}))
    try:
        with pytest.raises(openai.BadRequestError) as err:
            ask(served.client, served.checkpoint)
        assert err.value.body["param"] == "model" and err.value.code == "safety_evaluation_failed"
        assert "safety gate" in err.value.message and "HS 40.0%" in err.value.message
    finally:
        with session_scope(served.settings.database_url) as s:
            s.execute(update(JobRow).where(JobRow.id == served.job.id).values(status="succeeded", error=None))


def test_a_shared_checkpoint_answers_the_grantee_until_revoked(served: Served) -> None:
    """The real adapter, called by another org once the owner shares the checkpoint, and not after revoking."""
    key = served.api.new_key()
    with session_scope(served.settings.database_url) as s:
        project = authenticate(s, f"Bearer {key}").org_id
    grantee = served.api.client(key, _strict_response_validation=True)
    perms = served.client.fine_tuning.checkpoints.permissions
    grant = perms.create(served.checkpoint, project_ids=[project]).data[0]
    try:
        theirs, mine = ask(grantee, served.checkpoint), ask(served.client, served.checkpoint)
        assert theirs.model == served.checkpoint
        assert theirs.choices[0].message.content == mine.choices[0].message.content  # the same weights
    finally:
        perms.delete(grant.id, fine_tuned_model_checkpoint=served.checkpoint)
    with pytest.raises(openai.NotFoundError) as err:
        ask(grantee, served.checkpoint)
    assert err.value.body["param"] == "model"


def test_a_deleted_model_is_never_served(served: Served) -> None:
    assert served.client.models.delete(served.job.fine_tuned_model).deleted
    with pytest.raises(openai.NotFoundError) as err:
        ask(served.client, served.job.fine_tuned_model)
    assert err.value.body["param"] == "model" and "deleted" in err.value.message



def test_the_backend_has_the_adapters_it_was_asked_to_load(served: Served) -> None:
    import httpx

    url = served.settings.inference_backends["*"]
    models = httpx.get(f"{url}/v1/models").json()["data"]
    names = {m["id"]: m.get("parent") for m in models}
    assert names[BASE] is None and names[served.checkpoint] == BASE


def test_the_dashboard_shows_the_backend_and_its_adapters(served: Served) -> None:
    import httpx

    admin = {"Authorization": f"Bearer {served.api.new_key(admin=True)}"}
    (backend,) = httpx.get(f"{served.api.v1}/admin/dashboard", headers=admin).json()["inference"]
    assert backend["reachable"] and backend["bases"] == ["*"] and backend["served"] == [BASE]
    assert served.checkpoint in backend["adapters"] and backend["requests"] >= 3
    assert backend["latency_p50_s"] is not None and backend["queue_depth"] == 0


def test_a_generation_past_the_timeout_is_a_504(served: Served) -> None:
    """The embedded server gives up on a generation after `inference_timeout_s`; the API passes that on as a 504."""
    impatient = served.settings.model_copy(update={"inference_timeout_s": 0.001})
    url, inference, inference_thread = serve_asgi(build_app(impatient, BASE, model_dir=served.api.model_dir))
    base_url, api, api_thread = serve(served.settings.model_copy(update={"inference_backends": {"*": url}}))
    try:
        client = openai.OpenAI(api_key=served.client.api_key, base_url=base_url + "/v1", max_retries=0)
        with pytest.raises(openai.InternalServerError) as exc:
            ask(client, BASE, max_tokens=64)
        assert exc.value.status_code == 504 and exc.value.code == "timeout", exc.value.body
        assert "longer than" in exc.value.message
    finally:
        for s, t in ((api, api_thread), (inference, inference_thread)):
            s.should_exit = True
            t.join(10)
