"""Creating a job from a fine-tuned model or checkpoint (OpenAI's continued fine-tuning): the caller's own model
or checkpoint, or a checkpoint shared with its org, is accepted and echoed as `model`; anything else is a 400
naming `model`, and another org's unshared checkpoint reads exactly like one that does not exist."""

from __future__ import annotations

import openai
import pytest
from sqlalchemy import update

from service.db import session_scope
from service.fine_tuning import repository
from service.ids import now
from service.orm import FineTunedModelRow, JobRow
from tests.live import LiveAPI
from tests.service.checkpoint_permissions.conftest import BASE, Org, add_checkpoint, new_org
from tests.service.helpers import error_of, upload


def add_model(api: LiveAPI, org: Org, *, deleted: bool = False, base: str = BASE) -> str:
    """The fine-tuned model a worker publishes when the org's job passes the safety gate."""
    name = f"ft:{BASE}:{org.org_id.lower()}:share:{org.job_id}"
    with session_scope(api.settings.database_url) as s:
        s.add(FineTunedModelRow(
            id=name, org_id=org.org_id, job_id=org.job_id, base_model=base,
            adapter_prefix=f"jobs/{org.job_id}/adapter/", created_at=now(), deleted_at=now() if deleted else None,
        ))
    return name


def create(org: Org, model: str) -> openai.types.fine_tuning.FineTuningJob:
    return org.client.fine_tuning.jobs.create(model=model, training_file=upload(org.client).id)


def refusal(org: Org, model: str) -> dict:
    with pytest.raises(openai.BadRequestError) as err:
        create(org, model)
    found = error_of(err.value)
    assert found["param"] == "model", found
    return found


def stored(api: LiveAPI, job_id: str) -> tuple[str, str | None, str | None]:
    with session_scope(api.settings.database_url) as s:
        row = repository.get_one(s, job_id)
        return row.model, row.parent_model, row.parent_adapter_prefix


def test_continues_from_own_model_own_checkpoint_and_shared_checkpoint(api: LiveAPI) -> None:
    owner, grantee = new_org(api), new_org(api)
    checkpoint, model = add_checkpoint(api, owner, 4), add_model(api, owner)

    job = create(owner, model)
    assert job.model == model and job.status == "validating_files"
    assert owner.client.fine_tuning.jobs.retrieve(job.id).model == model
    assert stored(api, job.id) == (BASE, model, f"jobs/{owner.job_id}/adapter/")

    job = create(owner, checkpoint)
    assert job.model == checkpoint
    assert stored(api, job.id) == (BASE, checkpoint, f"jobs/{owner.job_id}/checkpoints/step-4/adapter/")

    refusal(grantee, checkpoint)
    perms = owner.client.fine_tuning.checkpoints.permissions
    grant = perms.create(checkpoint, project_ids=[grantee.org_id]).data[0]
    job = create(grantee, checkpoint)
    assert job.model == checkpoint and job.organization_id == grantee.org_id
    assert stored(api, job.id)[2] == f"jobs/{owner.job_id}/checkpoints/step-4/adapter/"
    # A grant covers that checkpoint only: not the owner's fine-tuned model.
    refusal(grantee, model)
    # Revoking stops new jobs; the accepted one keeps the adapter it was resolved to.
    perms.delete(grant.id, fine_tuned_model_checkpoint=checkpoint)
    assert refusal(grantee, checkpoint)["code"] == "model_not_found"
    assert grantee.client.fine_tuning.jobs.retrieve(job.id).model == checkpoint
    assert stored(api, job.id) == (BASE, checkpoint, f"jobs/{owner.job_id}/checkpoints/step-4/adapter/")


def test_unshared_gated_deleted_and_unfinished_are_400s_naming_model(api: LiveAPI) -> None:
    owner, bystander = new_org(api), new_org(api)
    checkpoint = add_checkpoint(api, owner, 4)
    unshared = refusal(bystander, checkpoint)
    unknown = refusal(bystander, checkpoint.replace(owner.job_id, "ftjob-nonexistent"))
    assert unshared["code"] == unknown["code"] == "model_not_found"
    assert unshared["message"].replace(checkpoint, "?") == unknown["message"].replace(
        checkpoint.replace(owner.job_id, "ftjob-nonexistent"), "?"
    )

    gated = new_org(api)
    gated_ckpt = add_checkpoint(api, gated, 2, status="failed")
    with session_scope(api.settings.database_url) as s:
        s.execute(update(JobRow).where(JobRow.id == gated.job_id).values(
            error={"code": "safety_evaluation_failed", "param": None, "message": "HS rose 40 points."}))
    assert refusal(gated, gated_ckpt)["code"] == "safety_evaluation_failed"
    assert refusal(gated, gated_ckpt.split(":ckpt-step-")[0])["code"] == "safety_evaluation_failed"

    running = new_org(api)
    assert refusal(running, add_checkpoint(api, running, 2, status="running"))["code"] == "model_not_ready"

    deleted = new_org(api)
    assert refusal(deleted, add_model(api, deleted, deleted=True))["code"] == "model_deleted"
    assert refusal(deleted, "ft:no-such-base:x::ftjob-x")["code"] == "model_not_found"

    api.register_base("tiny-unaligned", aligned=False)
    unaligned = new_org(api)
    found = refusal(unaligned, add_model(api, unaligned, base="tiny-unaligned"))
    assert found["code"] == "model_not_available" and "tiny-unaligned" in found["message"]
