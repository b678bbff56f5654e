"""Fine-tuning jobs API through the official openai SDK against a live server."""

from __future__ import annotations

import uuid

import httpx
import openai
import pytest
from sqlalchemy import select

from service.db import session_scope
from service.fine_tuning import repository
from service.ids import new_id, now
from service.orm import CheckpointRow, JobRow
from tests.service.helpers import error_of, jsonl, upload

BASE = "tiny-aligned"


@pytest.fixture(autouse=True)
def _bases(api) -> None:
    api.register_base(BASE)
    api.register_base("tiny-unaligned", aligned=False)


@pytest.fixture
def train_id(client: openai.OpenAI) -> str:
    return upload(client, 40).id


def bad_request(fn, *args, **kwargs) -> dict:
    with pytest.raises(openai.BadRequestError) as e:
        fn(*args, **kwargs)
    return error_of(e.value)


def test_create_resolves_auto_and_waits_honestly(client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(
        model=BASE,
        training_file=train_id,
        suffix="calc",
        metadata={"team": "red"},
        method={
            "type": "supervised",
            "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": "auto"}},
        },
    )
    assert job.id.startswith("ftjob-") and job.object == "fine_tuning.job"
    assert job.status == "validating_files"  # no worker in these tests: it must not pretend to progress
    hp = job.hyperparameters
    assert (hp.n_epochs, hp.batch_size, hp.learning_rate_multiplier) == (2, 4, 1.0)
    assert job.method.type == "supervised" and job.method.supervised.hyperparameters.n_epochs == 2
    assert isinstance(job.seed, int) and job.metadata == {"team": "red"}
    assert job.fine_tuned_model is None and job.result_files == [] and job.error is None
    assert client.fine_tuning.jobs.retrieve(job.id) == job
    explicit = client.fine_tuning.jobs.create(
        model=BASE, training_file=train_id, seed=7, hyperparameters={"learning_rate_multiplier": 0.5}
    )
    assert explicit.seed == 7 and explicit.hyperparameters.learning_rate_multiplier == 0.5


def test_create_rejects_with_named_params(api, client: openai.OpenAI, train_id: str) -> None:
    jobs = client.fine_tuning.jobs
    err = bad_request(jobs.create, model="gpt-4o-mini", training_file=train_id)
    assert (err["param"], err["code"]) == ("model", "model_not_available")
    assert bad_request(jobs.create, model="tiny-unaligned", training_file=train_id)["param"] == "model"
    err = bad_request(jobs.create, model=BASE, training_file=train_id, method={"type": "dpo"})
    assert err["param"] == "method.type" and "supervised" in err["message"]
    assert (
        bad_request(jobs.create, model=BASE, training_file=train_id, method={"type": "reinforcement"})["code"]
        == "unsupported_method"
    )
    assert bad_request(jobs.create, model=BASE, training_file="file-nope")["param"] == "training_file"
    assert (
        bad_request(jobs.create, model=BASE, training_file=train_id, validation_file="file-nope")["param"]
        == "validation_file"
    )
    assert bad_request(jobs.create, model=BASE, training_file=train_id, suffix="x" * 65)["param"] == "suffix"
    err = bad_request(
        jobs.create, model=BASE, training_file=train_id, metadata={f"k{i}": "v" for i in range(17)}
    )
    assert err["param"] == "metadata"
    err = bad_request(jobs.create, model=BASE, training_file=train_id, hyperparameters={"batch_size": 1})
    assert err["param"] == "hyperparameters.batch_size" and "Antibody" in err["message"]
    assert bad_request(jobs.create, model=BASE, training_file=train_id, hyperparameters={"n_epochs": 0})
    err = bad_request(
        jobs.create,
        model=BASE,
        training_file=train_id,
        hyperparameters={"n_epochs": 2},
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
    )
    assert "conflicts" in err["message"]
    r = httpx.post(
        f"{api.v1}/fine_tuning/jobs",
        json={"model": BASE},
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert r.status_code == 400 and r.json()["error"]["param"] == "training_file"
    assert (
        bad_request(jobs.create, model=BASE, training_file=train_id, extra_body={"foo": 1})["param"] == "foo"
    )


def test_errored_file_cannot_train(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError):
        client.files.create(file=("bad.jsonl", b"{}\n" * 12), purpose="fine-tune")
    (bad,) = client.files.list().data
    err = bad_request(client.fine_tuning.jobs.create, model=BASE, training_file=bad.id)
    assert err["param"] == "training_file" and "not ready" in err["message"]


def test_list_paginates_and_filters_metadata(client: openai.OpenAI, train_id: str) -> None:
    ids = [
        client.fine_tuning.jobs.create(model=BASE, training_file=train_id, metadata={"n": str(i % 2)}).id
        for i in range(5)
    ]
    page = client.fine_tuning.jobs.list(limit=2)
    assert [j.id for j in page.data] == ids[::-1][:2] and page.has_more
    assert [j.id for j in client.fine_tuning.jobs.list(limit=2)] == ids[::-1]
    assert [j.id for j in client.fine_tuning.jobs.list(metadata={"n": "1"})] == [ids[3], ids[1]]
    tail = client.fine_tuning.jobs.list(after=ids[1])
    assert [j.id for j in tail.data] == [ids[0]] and not tail.has_more


def test_idempotency_key(api) -> None:
    key = api.new_key()
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {key}"}) as http:
        file_id = http.post(
            "/files", data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", jsonl())}
        ).json()["id"]
        body = {"model": BASE, "training_file": file_id}
        idem = {"Idempotency-Key": uuid.uuid4().hex}
        first = http.post("/fine_tuning/jobs", json=body, headers=idem).json()
        again = http.post("/fine_tuning/jobs", json=body, headers=idem).json()
        assert first["id"] == again["id"]
        other = http.post("/fine_tuning/jobs", json={**body, "suffix": "x"}, headers=idem)
        assert other.status_code == 400 and other.json()["error"]["code"] == "idempotency_key_reused"
        fresh = http.post("/fine_tuning/jobs", json=body).json()
        assert fresh["id"] != first["id"]


def test_cancel_pause_resume_state_machine(api, client: openai.OpenAI, train_id: str) -> None:
    jobs = client.fine_tuning.jobs
    job = jobs.create(model=BASE, training_file=train_id)
    assert jobs.pause(job.id).status == "paused"
    assert bad_request(jobs.pause, job.id)["code"] == "invalid_job_state"
    assert jobs.resume(job.id).status == "queued"
    assert bad_request(jobs.resume, job.id)["code"] == "invalid_job_state"
    cancelled = jobs.cancel(job.id)
    assert cancelled.status == "cancelled" and cancelled.finished_at is not None
    err = bad_request(jobs.cancel, job.id)  # 400, not 409: the SDK retries 409s
    assert "cancelled" in err["message"]
    messages = [e.message for e in jobs.list_events(job.id, limit=100)]
    assert messages[0] == "Fine-tuning job cancelled" and messages[-1].startswith("Created fine-tuning job")
    running = jobs.create(model=BASE, training_file=train_id)
    with session_scope(api.settings.database_url) as s:  # stand in for a worker holding the job
        assert repository.transition(s, running.id, ("validating_files",), "running")
    assert jobs.cancel(running.id).status == "running"  # cooperative: the worker stops at its next step
    with session_scope(api.settings.database_url) as s:
        assert s.scalar(select(JobRow.control).where(JobRow.id == running.id)) == "cancel"


def test_events_newest_first_with_pagination(api, client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train_id)
    with session_scope(api.settings.database_url) as s:
        for step in range(1, 6):
            repository.add_event(
                s, job.id, f"Step {step}/5", type="metrics", data={"step": step, "train_loss": 1.0 / step}
            )
    events = client.fine_tuning.jobs.list_events(job.id, limit=3)
    assert [e.message for e in events.data] == ["Step 5/5", "Step 4/5", "Step 3/5"] and events.has_more
    assert events.data[0].type == "metrics" and events.data[0].data == {"step": 5, "train_loss": 0.2}
    rest = client.fine_tuning.jobs.list_events(job.id, after=events.data[-1].id, limit=100)
    assert [e.message for e in rest.data][:2] == ["Step 2/5", "Step 1/5"] and not rest.has_more


def test_checkpoints_list(api, client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train_id, suffix="s")
    with session_scope(api.settings.database_url) as s:
        for step in (10, 20):
            s.add(
                CheckpointRow(
                    id=new_id("ftckpt_"),
                    job_id=job.id,
                    step_number=step,
                    created_at=now(),
                    fine_tuned_model_checkpoint=f"ft:{BASE}:org:s:{job.id}:ckpt-step-{step}",
                    metrics={"train_loss": 0.5},
                    object_prefix=f"jobs/{job.id}/checkpoints/step-{step}/",
                )
            )
    page = client.fine_tuning.jobs.checkpoints.list(job.id, limit=1)
    (ckpt,) = page.data
    assert ckpt.step_number == 20 and ckpt.id.startswith("ftckpt_") and page.has_more
    assert ckpt.fine_tuned_model_checkpoint.endswith("ckpt-step-20") and ckpt.metrics.train_loss == 0.5
    assert ckpt.fine_tuning_job_id == job.id and ckpt.object == "fine_tuning.job.checkpoint"
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == [20, 10]


def test_admin_lists_jobs_of_all_orgs(api, client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train_id)
    admin = api.new_key(admin=True)
    r = httpx.get(
        f"{api.v1}/admin/fine_tuning/jobs",
        params={"limit": 100},
        headers={"Authorization": f"Bearer {admin}"},
    )
    assert job.id in [j["id"] for j in r.json()["data"]]
    r = httpx.get(f"{api.v1}/admin/fine_tuning/jobs", headers={"Authorization": f"Bearer {client.api_key}"})
    assert r.status_code == 403 and r.json()["error"]["type"] == "permission_error"


def test_events_stream_as_server_sent_events(api, client: openai.OpenAI, train_id: str) -> None:
    job = client.fine_tuning.jobs.create(model=BASE, training_file=train_id)
    client.fine_tuning.jobs.cancel(job.id)
    with httpx.stream(
        "GET",
        f"{api.v1}/fine_tuning/jobs/{job.id}/events",
        params={"stream": "true"},
        headers={"Authorization": f"Bearer {client.api_key}"},
        timeout=10,
    ) as r:
        assert r.headers["content-type"].startswith("text/event-stream")
        data = [line.removeprefix("data: ") for line in r.iter_lines() if line.startswith("data: ")]
    assert data[-1] == "[DONE]"
    import json

    messages = [json.loads(d)["message"] for d in data[:-1]]
    assert messages[0].startswith("Created fine-tuning job") and messages[-1] == "Fine-tuning job cancelled"
