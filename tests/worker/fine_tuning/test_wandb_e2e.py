"""End to end with the SDK (issue 19 item 6): a job with `integrations: [{"type": "wandb"}]` on an API whose provider
configured W&B, trained by a real `ftaas worker` with WANDB_MODE=offline, leaves a W&B run holding the job's
metrics; on an API without W&B configuration the same request is a 400 naming `integrations`.

Embedded stack only (SQLite, file store, filesystem broker): the integration sits above the storage backends.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest
from pydantic import SecretStr

from service.config import Settings
from service.migrate import upgrade
from tests.live import LiveAPI, WorkerProcess, serve, settings_env, wait_for
from tests.service.helpers import error_of
from tests.worker.fine_tuning.test_runner import BASE, WORKER, Stack, chats, status_of
from tests.worker.fine_tuning.wandb_files import finished_run, run_dirs

pytest.importorskip("wandb")

WANDB = {"type": "wandb", "wandb": {"project": "antibody-e2e", "name": "e2e run", "tags": ["e2e"]}}


@dataclass
class Apis:
    configured: Stack  # the provider set FTAAS_WANDB_BASE_URL / _API_KEY; its worker logs offline
    bare: LiveAPI  # the same database and store, served without any W&B setting


@pytest.fixture(scope="module")
def apis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Apis]:
    from worker.datasets.assets import tiny_model_dir

    model = tiny_model_dir(tmp_path_factory.mktemp("tiny"))
    bare = Settings(home=tmp_path_factory.mktemp("home-wandb"), broker_url="filesystem://", **WORKER)
    configured = bare.model_copy(
        update={"wandb_base_url": "http://127.0.0.1:9", "wandb_api_key": SecretStr("provider-key-e2e")}
    )
    upgrade(bare.database_url)
    servers = [serve(configured), serve(bare)]
    api = LiveAPI("embedded", servers[0][0], configured, servers[0][1].config.app.state.store, model)
    api.register_base(BASE)
    env = {**settings_env(configured, home=configured.home), "WANDB_MODE": "offline"}
    stack = Stack(api, env, tmp_path_factory.mktemp("logs"))
    yield Apis(stack, LiveAPI("embedded", servers[1][0], bare, api.store, model))
    for _, server, thread in servers:
        server.should_exit = True
        thread.join(10)


def test_job_with_wandb_is_logged_to_an_offline_run(apis: Apis) -> None:
    stack = apis.configured
    client = stack.api.client(stack.api.new_key(f"org-{uuid.uuid4().hex[:8]}"), _strict_response_validation=True)
    f = client.files.create(file=("train.jsonl", chats(16)), purpose="fine-tune")
    worker = stack.worker()
    try:
        job = client.fine_tuning.jobs.create(
            model=BASE,
            training_file=f.id,
            integrations=[WANDB],  # type: ignore[list-item]
            method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 2, "batch_size": 4}}},
        )
        (integration,) = job.integrations or []
        assert integration.type == "wandb" and integration.wandb.project == "antibody-e2e"
        assert integration.wandb.name == "e2e run" and integration.wandb.tags == ["e2e"]
        assert integration.wandb.entity is None and integration.wandb.run_id == job.id  # type: ignore[attr-defined]
        wait_for(lambda: status_of(client, job.id, "succeeded"), 240, f"job success\n{stack.log_tail()}")
        run = finished_run(Path(stack.api.settings.home) / "wandb", job.id)  # the run ends just after the job
    finally:
        worker.stop()
    assert client.fine_tuning.jobs.retrieve(job.id).integrations == job.integrations
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    assert not [e.message for e in events if "W&B" in e.message]
    metrics = sorted((e.data for e in events if e.type == "metrics"), key=lambda d: d["step"])
    (evaluation,) = [e.data for e in events if e.message.startswith("Evaluation:")]

    assert len(run_dirs(Path(stack.api.settings.home) / "wandb", job.id)) == 1
    assert run.run["id"] == job.id and run.run["project"] == "antibody-e2e" and run.run["name"] == "e2e run"
    assert "e2e" in run.run["tags"] and run.run["config"]["n_epochs"] == 2 and run.run["config"]["model"] == BASE
    by_step = {h["_step"]: h for h in run.history}
    assert sorted(by_step) == list(range(1, metrics[-1]["total_steps"] + 1))  # every step, not only the events'
    for m in metrics:
        logged = by_step[m["step"]]
        for key in ("train_loss", "train_mean_token_accuracy", "learning_rate", "weight_entropy"):
            assert logged[key] == pytest.approx(m[key]), (m["step"], key)
    assert "hs" in evaluation and run.summary["hs"] == evaluation["hs"]  # the HS/FA summary, as the event has it
    assert {k: v for k, v in evaluation.items() if v is not None}.items() <= run.summary.items()
    assert run.summary["status"] == "succeeded" and run.exit_code == 0
    assert "provider-key-e2e" not in stack.log_tail()


def test_an_unreachable_wandb_server_is_a_warning_and_the_job_still_succeeds(apis: Apis) -> None:
    stack = apis.configured
    client = stack.api.client(_strict_response_validation=True)
    f = client.files.create(file=("train.jsonl", chats(16)), purpose="fine-tune")
    online = stack.env | {"WANDB_MODE": "online", "FTAAS_WANDB_TIMEOUT_S": "3"}
    worker = WorkerProcess(online, stack.logs / "worker-online.log")  # the API's W&B URL is a closed port
    try:
        job = client.fine_tuning.jobs.create(model=BASE, training_file=f.id, integrations=[WANDB])  # type: ignore[list-item]
        wait_for(lambda: status_of(client, job.id, "succeeded"), 240, f"job success\n{stack.log_tail()}")
    finally:
        worker.stop()
    events = list(client.fine_tuning.jobs.list_events(job.id, limit=100))
    (warning,) = [e for e in events if "W&B" in e.message]
    assert warning.level == "warn" and warning.message.startswith("W&B logging stopped")
    assert "provider-key-e2e" not in warning.message + stack.log_tail()


def test_wandb_without_provider_configuration_is_a_400_naming_integrations(apis: Apis) -> None:
    client = apis.bare.client(_strict_response_validation=True)
    f = client.files.create(file=("train.jsonl", chats(16)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=BASE, training_file=f.id, integrations=[WANDB])  # type: ignore[list-item]
    err = error_of(caught.value)
    assert err["param"] == "integrations" and "not configured W&B" in err["message"]
    assert not list(client.fine_tuning.jobs.list())


def test_one_wandb_integration_per_job(apis: Apis) -> None:
    client = apis.configured.api.client(_strict_response_validation=True)
    f = client.files.create(file=("train.jsonl", chats(16)), purpose="fine-tune")
    with pytest.raises(openai.BadRequestError) as caught:
        client.fine_tuning.jobs.create(model=BASE, training_file=f.id, integrations=[WANDB, WANDB])  # type: ignore[list-item]
    assert error_of(caught.value)["param"] == "integrations"
