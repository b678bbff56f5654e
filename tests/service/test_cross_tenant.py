"""Every endpoint, called with another org's key on this org's objects, answers 404 and changes nothing."""

from __future__ import annotations

import httpx
import pytest

from service.db import session_scope
from service.ids import new_id, now
from service.orm import CheckpointRow
from tests.service.helpers import upload


def add_checkpoint(api, job) -> str:
    """A checkpoint row as a worker writes one; the job itself is left as it is."""
    name = f"ft:{job.model}:org:x:{job.id}:ckpt-step-2"
    with session_scope(api.settings.database_url) as s:
        s.add(CheckpointRow(id=new_id("ftckpt_"), job_id=job.id, step_number=2, created_at=now(),
                            fine_tuned_model_checkpoint=name, object_prefix=f"jobs/{job.id}/checkpoints/step-2/"))
    return name


@pytest.fixture
def owned(api, client):
    api.register_base("tiny-aligned")
    f = upload(client)
    job = client.fine_tuning.jobs.create(model="tiny-aligned", training_file=f.id)
    return f.id, job.id, add_checkpoint(api, job)


def test_other_org_gets_404_everywhere(api, client, owned) -> None:
    file_id, job_id, checkpoint = owned
    intruder = api.new_key()
    calls = [
        ("GET", f"/files/{file_id}", None),
        ("GET", f"/files/{file_id}/content", None),
        ("DELETE", f"/files/{file_id}", None),
        ("GET", f"/fine_tuning/jobs/{job_id}", None),
        ("POST", f"/fine_tuning/jobs/{job_id}/cancel", None),
        ("POST", f"/fine_tuning/jobs/{job_id}/pause", None),
        ("POST", f"/fine_tuning/jobs/{job_id}/resume", None),
        ("GET", f"/fine_tuning/jobs/{job_id}/events", None),
        ("GET", f"/fine_tuning/jobs/{job_id}/checkpoints", None),
        ("POST", f"/fine_tuning/checkpoints/{checkpoint}/permissions", {"project_ids": ["org-x"]}),
        ("GET", f"/fine_tuning/checkpoints/{checkpoint}/permissions", None),
        ("DELETE", f"/fine_tuning/checkpoints/{checkpoint}/permissions/cp_x", None),
        ("POST", "/chat/completions", {"model": checkpoint, "messages": [{"role": "user", "content": "Hi"}]}),
    ]
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {intruder}"}) as http:
        for method, path, body in calls:
            r = http.request(method, path, json=body)
            assert r.status_code == 404, (method, path, r.text)
            assert set(r.json()) == {"error"}
        # Another org's file can't be trained on, and never shows up in listings.
        r = http.post("/fine_tuning/jobs", json={"model": "tiny-aligned", "training_file": file_id})
        assert r.status_code == 400 and r.json()["error"]["param"] == "training_file"
        assert r.json()["error"]["message"].endswith("does not exist.")
        assert http.get("/files").json()["data"] == []
        assert http.get("/fine_tuning/jobs").json()["data"] == []
        assert http.get("/fine_tuning/jobs", params={"after": job_id}).status_code == 400
    # The owner still sees everything intact.
    assert client.files.retrieve(file_id).status == "processed"
    assert client.fine_tuning.jobs.retrieve(job_id).status == "validating_files"
    assert client.fine_tuning.checkpoints.permissions.list(checkpoint).data == []
