"""The re-evaluation admin API's refusals, against a live server (both backends, no worker): only a job that
trained an adapter can be evaluated again, and every refusal says why in OpenAI's error shape."""

from __future__ import annotations

import json
import uuid

import httpx
from sqlalchemy import update

from service.db import session_scope
from service.job_evaluations.service import has_adapter
from service.orm import JobRow
from tests.live import LiveAPI


def _job(api: LiveAPI) -> str:
    api.register_base("tiny-aligned")
    client = api.client()
    rows = [{"messages": [{"role": "user", "content": f"{i}?"}, {"role": "assistant", "content": f"{i}."}]}
            for i in range(10)]  # fmt: skip
    f = client.files.create(file=("t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()), purpose="fine-tune")
    return client.fine_tuning.jobs.create(model="tiny-aligned", training_file=f.id).id


def test_only_a_job_with_an_adapter_can_be_evaluated_again(api: LiveAPI) -> None:
    admin = {"Authorization": f"Bearer {api.new_key(admin=True)}"}
    job_id = _job(api)  # no worker: it stays validating_files
    url = f"{api.v1}/admin/fine_tuning/jobs/{job_id}/evaluations"
    early = httpx.post(url, headers=admin)
    assert early.status_code == 400, early.text
    error = early.json()["error"]
    assert (error["code"], error["param"]) == ("evaluation_not_available", "job_id")
    assert "validating_files without a trained adapter" in error["message"]
    assert httpx.get(url, headers=admin).json() == {"object": "list", "data": []}

    gone = httpx.post(f"{api.v1}/admin/fine_tuning/jobs/ftjob-nope/evaluations", headers=admin)
    assert gone.status_code == 404 and gone.json()["error"]["param"] == "job_id"
    missing = httpx.get(f"{url}/jobeval_{uuid.uuid4().hex[:8]}", headers=admin)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "evaluation_id"
    customer = httpx.post(url, headers={"Authorization": f"Bearer {api.new_key()}"})
    assert customer.status_code in (401, 403) and customer.json()["error"]

    with session_scope(api.settings.database_url) as session:  # as if the gate had stopped it after training
        error = {"code": "safety_evaluation_failed", "message": "HS too high", "param": None}
        session.execute(update(JobRow).where(JobRow.id == job_id).values(status="failed", error=error))
    queued = httpx.post(url, headers=admin)
    assert queued.status_code == 202 and queued.json()["status"] == "queued"
    assert httpx.get(url, headers=admin).json()["data"][0]["id"] == queued.json()["id"]


def test_has_adapter_reads_the_status_and_the_gates_code() -> None:
    def job(status: str, code: str | None = None) -> JobRow:
        return JobRow(status=status, error={"code": code} if code else None)

    assert has_adapter(job("succeeded")) and has_adapter(job("failed", "safety_evaluation_failed"))
    assert not has_adapter(job("failed", "invalid_training_file")) and not has_adapter(job("cancelled"))
    assert not has_adapter(job("running"))
