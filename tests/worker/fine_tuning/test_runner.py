"""End to end: SDK → API → broker → real `ftaas worker` process → Antibody training → artifacts, in both modes.

distributed: PostgreSQL + Redis + S3 (moto), all real servers; embedded: SQLite + kombu filesystem broker + file://.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest

from service.config import Settings
from service.migrate import upgrade
from service.storage import S3ObjectStore
from tests import servers
from tests.live import LiveAPI, WorkerProcess, serve, settings_env, wait_for
from tests.service.webhooks.test_delivery import Receiver

BASE = "tiny-aligned"
WORKER = dict(
    safety_mix_share=0.1,  # the provider default (tests/conftest.py turns the mix off elsewhere)
    lease_seconds=3.0,
    checkpoint_every=2,
    metrics_every=1,
    max_seq_len=64,
    requeue_after_s=30,
    eval_harmful_prompts=8,
    eval_max_new_tokens=16,
    eval_fa_max=8,
)


def chats(n: int) -> bytes:
    rows = [
        {
            "messages": [
                {"role": "user", "content": f"What is {i} plus {i}?"},
                {"role": "assistant", "content": f"{i} plus {i} is {2 * i}."},
            ]
        }
        for i in range(n)
    ]
    return "".join(json.dumps(r) + "\n" for r in rows).encode()


@dataclass
class Stack:
    api: LiveAPI
    env: dict[str, str]
    logs: Path

    def worker(self) -> WorkerProcess:
        return WorkerProcess(self.env, self.logs / f"worker-{uuid.uuid4().hex[:6]}.log")

    def job(self, client: openai.OpenAI, n: int = 16, epochs: int = 2, batch: int = 4, validation: bool = False):
        f = client.files.create(file=("train.jsonl", chats(n)), purpose="fine-tune")
        v = client.files.create(file=("valid.jsonl", chats(12)), purpose="fine-tune") if validation else None
        return client.fine_tuning.jobs.create(
            model=BASE,
            training_file=f.id,
            validation_file=v.id if v else None,
            suffix="e2e",
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": epochs, "batch_size": batch}},
            },
        )

    def log_tail(self) -> str:
        return "\n".join(p.read_text(errors="replace")[-3000:] for p in sorted(self.logs.glob("*.log")))


def _settings(mode: str, home: Path, request: pytest.FixtureRequest) -> Settings:
    if mode == "embedded":
        return Settings(home=home, broker_url="filesystem://", **WORKER)
    redis = request.getfixturevalue("redis_url").rsplit("/", 1)[0] + "/1"
    return Settings(
        home=home,
        database_url=servers.start_postgres("ftaas_worker"),
        broker_url=redis,
        storage_url=f"s3://ftaas-e2e-{uuid.uuid4().hex[:10]}/objects",
        s3_endpoint_url=request.getfixturevalue("s3_endpoint"),
        **WORKER,
    )


@pytest.fixture(scope="module", params=["distributed", "embedded"])
def stack(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from worker.datasets.assets import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    settings = _settings(request.param, tmp_path_factory.mktemp(f"home-{request.param}"), request)
    upgrade(settings.database_url)
    base_url, server, thread = serve(settings)
    store = server.config.app.state.store
    if isinstance(store, S3ObjectStore):
        store.ensure_bucket()
    api = LiveAPI(request.param, base_url, settings, store, model)
    api.register_base(BASE)
    env = settings_env(settings, home=settings.home)
    yield Stack(api, env, tmp_path_factory.mktemp("logs"))
    server.should_exit = True
    thread.join(10)


def status_of(client: openai.OpenAI, job_id: str, *wanted: str) -> bool:
    job = client.fine_tuning.jobs.retrieve(job_id)
    assert job.status not in ({"failed", "cancelled", "succeeded"} - set(wanted)), job
    return job.status in wanted


def test_job_trains_to_a_usable_adapter(stack: Stack) -> None:
    org = f"org-{uuid.uuid4().hex[:8]}"
    client = stack.api.client(stack.api.new_key(org))
    admin = {"Authorization": f"Bearer {stack.api.new_key(admin=True)}"}
    receiver = Receiver(secret="set below")  # the secret is issued when the endpoint is registered
    hook = httpx.post(f"{stack.api.v1}/admin/webhooks", json={"url": receiver.url(), "org": org}, headers=admin)
    receiver.secret = hook.json()["secret"]
    worker = stack.worker()
    try:
        job = stack.job(client, validation=True)
        wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"job success\n{stack.log_tail()}")
        wait_for(lambda: receiver.calls, 30, "the succeeded webhook")
    finally:
        worker.stop()
        receiver.close()
    (call,) = receiver.calls
    assert call["event"].type == "fine_tuning.job.succeeded" and call["event"].data.id == job.id
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.fine_tuned_model == f"ft:{BASE}:{org}:e2e:{job.id}"
    assert job.trained_tokens and job.trained_tokens > 0 and job.finished_at
    assert job.fine_tuned_model in [m.id for m in client.models.list()]

    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    messages = [e.message for e in events]
    assert messages[0] == "The job has successfully completed"
    validated = next(m for m in messages if m.startswith("Files validated: 16 examples"))
    assert validated.endswith(" 10 steps (16 lines trained + 2 safety-mix pairs)")  # the 10 steps it then ran
    assert any(m.startswith("Safety mix: 2 of the provider's refusal pairs") for m in messages)
    metrics = [e for e in events if e.type == "metrics"]
    assert sorted(e.data["step"] for e in metrics) == list(range(1, 11))  # 18 lines, batch 4, 2 epochs
    assert {
        "train_loss",
        "train_mean_token_accuracy",
        "weight_min",
        "weight_mean",
        "weight_max",
        "weight_entropy",
        "frac_r_negative",
    } <= set(metrics[0].data)

    ckpts = list(client.fine_tuning.jobs.checkpoints.list(job.id))
    assert [c.step_number for c in ckpts] == [10, 8, 6, 4, 2]
    assert ckpts[0].fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-10"
    assert ckpts[0].metrics.train_loss is not None

    files = {client.files.retrieve(f).filename: f for f in job.result_files}
    assert set(files) == {"step_metrics.csv", "report.json", "report.html"}
    assert {client.files.retrieve(f).purpose for f in job.result_files} == {"fine-tune-results"}
    csv_lines = client.files.content(files["step_metrics.csv"]).read().decode().splitlines()
    assert csv_lines[0].startswith("step,train_loss") and len(csv_lines) == 11

    auth = {"Authorization": f"Bearer {client.api_key}"}
    report = httpx.get(f"{stack.api.v1}/fine_tuning/jobs/{job.id}/report", headers=auth).json()
    assert report == json.loads(client.files.content(files["report.json"]).read())
    hs, fa = report["harmful"], report["accuracy"]
    assert hs["n"] == 8 and hs["protocol"]["max_new_tokens"] == 16 and hs["protocol"]["judge"] == "keyword_refusal"
    assert (
        hs["base"]["protocol_id"] == hs["protocol"]["protocol_id"] and hs["delta"] == hs["score"] - hs["base"]["score"]
    )
    assert fa["source"] == "validation_file" and fa["n"] == 8 and fa["base"] is not None
    assert report["attenuation"]["n_lines"] == 16  # the customer's lines, not the mix
    assert any("2 of the provider's refusal pairs" in n for n in report["notes"])
    html = httpx.get(f"{stack.api.v1}/fine_tuning/jobs/{job.id}/report.html", headers=auth).text
    assert "<svg" in html and f"{hs['score']:.1f}" in html
    att = httpx.get(f"{stack.api.v1}/fine_tuning/jobs/{job.id}/attenuation", headers=auth).json()
    assert att["n_lines"] == 16 and len(att["most_down_weighted"]) > 0

    r = httpx.get(
        f"{stack.api.v1}/fine_tuning/jobs/{job.id}/adapter",
        headers={"Authorization": f"Bearer {client.api_key}"},
    )
    assert r.status_code == 200
    with tarfile.open(fileobj=io.BytesIO(r.content), mode="r:gz") as tar:
        names = tar.getnames()
        tar.extractall(stack.logs / job.id, filter="data")
    assert "adapter/adapter_model.safetensors" in names and "adapter/adapter_config.json" in names
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(
        AutoModelForCausalLM.from_pretrained(stack.api.model_dir), stack.logs / job.id / "adapter"
    )
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_cancel_pause_resume_while_running(stack: Stack) -> None:
    client = stack.api.client()
    worker = stack.worker()
    jobs = client.fine_tuning.jobs

    def step(job_id: str) -> int:
        return max((e.data["step"] for e in jobs.list_events(job_id, limit=5) if e.type == "metrics"), default=0)

    try:
        job = stack.job(client, n=32, epochs=50)  # 450 steps with the mix: long enough to act mid-training
        wait_for(lambda: step(job.id) >= 3, 120, f"training to start\n{stack.log_tail()}")
        jobs.pause(job.id)
        at_request = step(job.id)
        wait_for(lambda: status_of(client, job.id, "paused"), 30, "pause")
        paused_step = step(job.id)
        assert paused_step <= at_request + 2  # acts within one training step (+1 for the event in flight)
        assert paused_step in [c.step_number for c in jobs.checkpoints.list(job.id)]
        jobs.resume(job.id)
        wait_for(lambda: step(job.id) > paused_step + 2, 60, "resumed training")
        resumed = [e.message for e in jobs.list_events(job.id, limit=100)]
        assert any(m == f"Resuming from checkpoint step-{paused_step} (attempt 2)" for m in resumed), resumed
        jobs.cancel(job.id)
        at_request = step(job.id)
        wait_for(lambda: status_of(client, job.id, "cancelled"), 30, "cancel")
        assert step(job.id) <= at_request + 2
        assert jobs.retrieve(job.id).fine_tuned_model is None
    finally:
        worker.stop()


def test_worker_killed_mid_training_resumes_from_checkpoint(stack: Stack) -> None:
    """kill -9 mid-training, start a new worker: 5 runs on the distributed stack, 1 on the embedded one."""
    for _ in range(5 if stack.api.backend == "distributed" else 1):
        kill_and_resume(stack)


def kill_and_resume(stack: Stack) -> None:
    client = stack.api.client()
    jobs = client.fine_tuning.jobs
    first = stack.worker()
    # 32 lines (nothing held out) + 3 of the safety mix, batch 4: 27 steps, a checkpoint every 2
    job = stack.job(client, n=32, epochs=3, validation=True)
    try:
        wait_for(
            lambda: any(c.step_number >= 4 for c in jobs.checkpoints.list(job.id)),
            120,
            f"a checkpoint\n{stack.log_tail()}",
        )
        first.kill9()
        second = stack.worker()
        try:
            wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"success after kill\n{stack.log_tail()}")
        finally:
            second.stop()
    finally:
        first.stop()
    events = list(jobs.list_events(job.id, limit=100))  # newest first
    (resumed,) = [e for e in events if e.message.startswith("Resuming from checkpoint step-")]
    assert resumed.data["resumed_from_step"] >= 4 and resumed.data["attempt"] == 2
    assert any(e.message.startswith("Worker lost (lease expired)") for e in events)
    # No step ran on two workers at once: every event of the killed worker precedes every event of the new one.
    owners = [e.data.get("worker") for e in events if e.type == "metrics"]
    dead, alive = owners[-1], owners[0]
    assert dead != alive
    assert owners == [alive] * owners.count(alive) + [dead] * owners.count(dead)
    steps = [e.data["step"] for e in events if e.type == "metrics" and e.data["worker"] == alive]
    assert min(steps) == resumed.data["resumed_from_step"] + 1 and max(steps) == 27


def test_admin_alignment_job_registers_a_trainable_base(stack: Stack) -> None:
    """Issue 5: the admin API enqueues Antibody's alignment stage on the GPU queue; the result is listed and usable."""
    name = f"aligned-{stack.api.backend}"
    admin = {"Authorization": f"Bearer {stack.api.new_key(admin=True)}"}
    body = {
        "name": name,
        "source": str(stack.api.model_dir),
        "max_steps": 2,
        "batch_size": 2,
        "eval_harmful": 4,
        "eval_benign": 4,
    }
    r = httpx.post(f"{stack.api.v1}/admin/base_models/align", json=body, headers=admin)
    assert r.status_code == 202 and r.json()["status"] == "queued"
    url = f"{stack.api.v1}/admin/base_models/alignments/{r.json()['id']}"
    client = stack.api.client()
    worker = stack.worker()
    try:
        finished = lambda: httpx.get(url, headers=admin).json()["status"] in ("succeeded", "failed")  # noqa: E731
        wait_for(finished, 240, f"the alignment run\n{stack.log_tail()}")
        run = httpx.get(url, headers=admin).json()
        assert run["status"] == "succeeded", run["error"]
        assert (run["step"], run["total_steps"], run["attempts"]) == (2, 2, 1) and run["worker_id"]
        assert run["result"]["name"] == name and run["finished_at"] >= run["started_at"] >= run["created_at"]
        assert name in [m.id for m in client.models.list()]
        (row,) = [
            m for m in httpx.get(f"{stack.api.v1}/admin/base_models", headers=admin).json()["data"] if m["name"] == name
        ]
        assert row["aligned"] and row["path"] == f"store://base-models/{name}"
        manifest = row["manifest"]
        assert manifest["steps"] == 2 and manifest["after"]["hs_protocol"]["size"] == 4
        assert set(manifest["data_sha256"]) >= {"align", "harm", "refusal", "attack", "eval_harmful"}
        f = client.files.create(file=("t.jsonl", chats(12)), purpose="fine-tune")
        job = client.fine_tuning.jobs.create(model=name, training_file=f.id, hyperparameters={"n_epochs": 1})
        wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"a job on the aligned base\n{stack.log_tail()}")
        with pytest.raises(openai.BadRequestError) as e:
            client.fine_tuning.jobs.create(model="not-registered", training_file=f.id)
        assert e.value.param == "model"
    finally:
        worker.stop()


def test_safety_gate_fails_the_job_and_deploys_nothing(stack: Stack) -> None:
    """Issue 6: over the provider's HS threshold the job fails with safety_evaluation_failed and no model."""
    client = stack.api.client()
    gate = {**stack.env, "FTAAS_SAFETY_MAX_HS": "-1"}  # any HS (≥ 0) is over it
    worker = WorkerProcess(gate, stack.logs / f"gate-{uuid.uuid4().hex[:6]}.log")
    try:
        job = stack.job(client, n=24, epochs=1)  # no validation file: FA on a held-out slice of training
        wait_for(lambda: status_of(client, job.id, "failed"), 180, f"the gate\n{stack.log_tail()}")
    finally:
        worker.stop()
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.error.code == "safety_evaluation_failed" and "report" in job.error.message
    assert job.fine_tuned_model is None
    assert not [m for m in client.models.list() if m.id.endswith(job.id)]
    (report_id,) = [f for f in job.result_files if client.files.retrieve(f).filename == "report.json"]
    report = json.loads(client.files.content(report_id).read())
    assert report["accuracy"]["source"] == "training_holdout" and report["accuracy"]["n"] == 3
    assert report["attenuation"]["n_lines"] == 21  # the 3 held-out lines were never trained on
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert any(m.endswith(" 6 steps (21 lines trained, 3 held out for FA + 2 safety-mix pairs)") for m in messages)


def test_a_worker_with_two_devices_trains_each_job_on_two_ranks(stack: Stack) -> None:
    client = stack.api.client(stack.api.new_key(f"org-{uuid.uuid4().hex[:8]}"))
    worker = WorkerProcess({**stack.env, "FTAAS_WORKER_GPUS": "2"}, stack.logs / f"worker-2-{uuid.uuid4().hex[:6]}.log")
    try:
        job = stack.job(client, epochs=1)
        wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"job success\n{stack.log_tail()}")
    finally:
        worker.stop()
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    started = [e for e in events if e.message.startswith("Fine-tuning job started")]
    assert [e.message for e in started] == ["Fine-tuning job started on 2 devices"]
    assert started[0].data["devices"] == 2
    done = client.fine_tuning.jobs.retrieve(job.id)
    assert done.trained_tokens and done.fine_tuned_model  # rank 0 published the adapter and the job was deployed
