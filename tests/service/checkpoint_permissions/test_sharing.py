"""A shared checkpoint, end to end with the SDK: the grantee calls it through chat completions until the grant is
deleted; the permissions API itself stays the owner's. The inference backend is a canned vLLM-protocol server, so
what is checked is the API's access decision and which adapter it routes to."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import openai
import pytest
from fastapi import FastAPI
from sqlalchemy import update

from service.db import session_scope
from service.orm import JobRow
from tests.live import serve_asgi
from tests.service.checkpoint_permissions.conftest import Org, add_checkpoint, new_org
from tests.service.helpers import error_of


@pytest.fixture(scope="module")
def backend() -> Iterator[tuple[str, list[dict]]]:
    """A vLLM-protocol backend that records the adapters it is asked to load."""
    loads: list[dict] = []
    app = FastAPI()

    @app.post("/v1/load_lora_adapter")
    def load(body: dict) -> str:
        loads.append(body)
        return "Success"

    @app.post("/v1/chat/completions")
    def chat(body: dict) -> dict:
        return {"id": "chatcmpl-1", "object": "chat.completion", "created": 1, "model": body["model"],
                "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
                "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}}

    url, server, thread = serve_asgi(app)
    yield url, loads
    server.should_exit = True
    thread.join(10)


@pytest.fixture
def serving(server: Callable[..., str], backend) -> str:
    """Another API server on the same database whose models are served by the canned backend."""
    return server(inference_backends={"*": backend[0]})


def ask(org: Org, v1: str, model: str):
    client = openai.OpenAI(api_key=org.client.api_key, base_url=v1, max_retries=0, _strict_response_validation=True)
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hello"}], max_tokens=4)


def test_sharing_grants_chat_until_revoked(api, owner: Org, checkpoint: str, serving: str, backend) -> None:
    grantee, bystander = new_org(api), new_org(api)
    perms = owner.client.fine_tuning.checkpoints.permissions
    with pytest.raises(openai.NotFoundError) as err:
        ask(grantee, serving, checkpoint)
    assert error_of(err.value)["param"] == "model"

    grant = perms.create(checkpoint, project_ids=[grantee.org_id]).data[0]
    reply = ask(grantee, serving, checkpoint)
    assert reply.model == checkpoint and reply.choices[0].message.content == "Hi."
    # Routed to the owner's checkpoint adapter, under the name the owner's own calls use.
    loaded = backend[1][-1]
    assert loaded["lora_name"] == checkpoint
    assert loaded["lora_path"].endswith(f"jobs/{owner.job_id}/checkpoints/step-4/adapter/")
    assert ask(owner, serving, checkpoint).model == checkpoint
    with pytest.raises(openai.NotFoundError):
        ask(bystander, serving, checkpoint)
    # Only this checkpoint is shared: not the job's other checkpoints.
    with pytest.raises(openai.NotFoundError):
        ask(grantee, serving, add_checkpoint(api, owner, 8))

    perms.delete(grant.id, fine_tuned_model_checkpoint=checkpoint)
    with pytest.raises(openai.NotFoundError) as err:
        ask(grantee, serving, checkpoint)  # at once: the adapter is still loaded on the backend
    assert error_of(err.value)["param"] == "model"
    assert ask(owner, serving, checkpoint).model == checkpoint


def test_a_grant_does_not_lift_the_safety_gate_or_readiness(api, owner: Org, checkpoint: str, serving: str) -> None:
    grantee = new_org(api)
    owner.client.fine_tuning.checkpoints.permissions.create(checkpoint, project_ids=[grantee.org_id])
    gated = {"code": "safety_evaluation_failed", "message": "HS 40.0% > 10.0%.", "param": None}
    for values, code in (({"status": "failed", "error": gated}, "safety_evaluation_failed"),
                         ({"status": "running", "error": None}, "model_not_ready")):
        with session_scope(api.settings.database_url) as s:
            s.execute(update(JobRow).where(JobRow.id == owner.job_id).values(**values))
        for org in (grantee, owner):
            with pytest.raises(openai.BadRequestError) as err:
                ask(org, serving, checkpoint)
            assert (error_of(err.value)["param"], err.value.code) == ("model", code)


def test_the_permissions_api_is_the_owners_alone(api, owner: Org, checkpoint: str) -> None:
    """Another org, the grantee included, sees neither the checkpoint nor its grants: a 404 as if missing."""
    grantee = new_org(api)
    grant = owner.client.fine_tuning.checkpoints.permissions.create(checkpoint, project_ids=[grantee.org_id]).data[0]
    for intruder in (new_org(api), grantee):
        perms = intruder.client.fine_tuning.checkpoints.permissions
        calls = [
            (perms.create, (checkpoint,), {"project_ids": [intruder.org_id]}),
            (perms.list, (checkpoint,), {}),
            (perms.delete, (grant.id,), {"fine_tuned_model_checkpoint": checkpoint}),
        ]
        for method, args, kwargs in calls:
            with pytest.raises(openai.NotFoundError) as err:
                method(*args, **kwargs)
            assert error_of(err.value)["param"] == "fine_tuned_model_checkpoint"
    # Its own grant id on its own checkpoint is no way in either.
    other = new_org(api)
    mine = add_checkpoint(api, other, 2)
    with pytest.raises(openai.NotFoundError) as err:
        other.client.fine_tuning.checkpoints.permissions.delete(grant.id, fine_tuned_model_checkpoint=mine)
    assert error_of(err.value)["param"] == "permission_id"
    assert [p.id for p in owner.client.fine_tuning.checkpoints.permissions.list(checkpoint).data] == [grant.id]
