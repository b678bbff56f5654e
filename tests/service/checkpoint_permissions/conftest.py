"""A succeeded job's checkpoint in a brand-new org, made the way a worker leaves one (rows, no training)."""

from __future__ import annotations

from dataclasses import dataclass

import openai
import pytest
from sqlalchemy import update

from service.db import session_scope
from service.ids import new_id, now
from service.orm import CheckpointRow, JobRow
from tests.live import LiveAPI
from tests.service.helpers import upload

BASE = "tiny-aligned"


@dataclass
class Org:
    client: openai.OpenAI  # strict: every response must parse into the SDK's own types
    org_id: str  # its project id: the `organization_id` its jobs show
    job_id: str


def new_org(api: LiveAPI) -> Org:
    """An org with one job, whose `organization_id` is how a customer learns its project id."""
    api.register_base(BASE)
    client = api.client(_strict_response_validation=True)
    job = client.fine_tuning.jobs.create(model=BASE, training_file=upload(client).id, suffix="share")
    return Org(client, job.organization_id, job.id)


def add_checkpoint(api: LiveAPI, org: Org, step: int, *, status: str = "succeeded") -> str:
    name = f"ft:{BASE}:{org.org_id.lower()}:share:{org.job_id}:ckpt-step-{step}"
    with session_scope(api.settings.database_url) as s:
        s.add(CheckpointRow(
            id=new_id("ftckpt_"), job_id=org.job_id, step_number=step, created_at=now(),
            fine_tuned_model_checkpoint=name, metrics={"train_loss": 0.5},
            object_prefix=f"jobs/{org.job_id}/checkpoints/step-{step}/",
        ))
        s.execute(update(JobRow).where(JobRow.id == org.job_id).values(status=status, finished_at=now()))
    return name


@pytest.fixture
def owner(api: LiveAPI) -> Org:
    return new_org(api)


@pytest.fixture
def checkpoint(api: LiveAPI, owner: Org) -> str:
    return add_checkpoint(api, owner, 4)
