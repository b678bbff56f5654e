"""End to end: POST /v1/admin/fine_tuning/jobs/{id}/evaluations → broker → real `ftaas worker` → the job's
adapter evaluated again, in both modes (the module-scoped stack of tests/worker/fine_tuning/test_runner.py).

What a provider relies on: the re-run reproduces the job's own evaluation when nothing changed (same adapter, same
prompts, greedy), it applies today's limits, and it never changes the job's status or its deployed model.
"""

from __future__ import annotations

import uuid

import httpx

from tests.live import WorkerProcess, wait_for
from tests.worker.fine_tuning.test_runner import Stack, stack, status_of  # noqa: F401  (the module-scoped stack)


def _finished(url: str, admin: dict[str, str]) -> dict | None:
    run = httpx.get(url, headers=admin).json()
    return run if run["status"] in ("succeeded", "failed") else None


def test_a_re_run_reproduces_the_evaluation_and_reports_todays_gate_without_touching_the_job(
    stack: Stack,  # noqa: F811
) -> None:
    client = stack.api.client()
    admin = {"Authorization": f"Bearer {stack.api.new_key(admin=True)}"}
    worker = stack.worker()  # the suite's gate is off (tests/conftest.py): the job succeeds
    try:
        job = stack.job(client, n=24, epochs=1)  # FA on a held-out slice of the training file
        wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"job success\n{stack.log_tail()}")
    finally:
        worker.stop()
    job = client.fine_tuning.jobs.retrieve(job.id)
    runs_url = f"{stack.api.v1}/admin/fine_tuning/jobs/{job.id}/evaluations"
    assert httpx.post(runs_url, headers={"Authorization": f"Bearer {stack.api.new_key()}"}).status_code in (401, 403)

    queued = httpx.post(runs_url, headers=admin)
    assert queued.status_code == 202, queued.text
    run = queued.json()
    assert (run["object"], run["job_id"], run["status"], run["result"]) == (
        "fine_tuning.job.evaluation",
        job.id,
        "queued",
        None,
    )
    again = httpx.post(runs_url, headers=admin)  # one at a time per job
    assert again.status_code == 400 and again.json()["error"]["code"] == "evaluation_in_progress"
    assert run["id"] in again.json()["error"]["message"]

    strict = {**stack.env, "FTAAS_SAFETY_MAX_HS": "-1"}  # today's limit: any HS (≥ 0) is over it
    worker = WorkerProcess(strict, stack.logs / f"re-eval-{uuid.uuid4().hex[:6]}.log")
    try:
        done = wait_for(lambda: _finished(f"{runs_url}/{run['id']}", admin), 180, f"re-run\n{stack.log_tail()}")
    finally:
        worker.stop()
    assert isinstance(done, dict) and done["status"] == "succeeded", done
    result = done["result"]
    original = {k: v for k, v in result["original"].items() if k in ("hs", "base_hs", "fa", "base_fa")}
    assert {k: result["summary"][k] for k in original} == original  # nothing changed but the limit
    assert result["passes_gate"] is False and "exceeds the provider's limit of -1.0%" in result["verdict"]
    assert result["judge"] == "keyword_refusal" and result["second_judge"]["hs"] is not None
    assert done["started_at"] and done["finished_at"] >= done["started_at"] and done["attempts"] == 1

    after = client.fine_tuning.jobs.retrieve(job.id)  # evidence, not a decision: the job and its model stay
    assert (after.status, after.fine_tuned_model) == ("succeeded", job.fine_tuned_model)
    assert job.fine_tuned_model in [m.id for m in client.models.list()]
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=100)]
    assert messages[0].startswith(f"Evaluation re-run {run['id']}: HS ") and "would fail the safety gate" in messages[0]
    assert messages[0].endswith("The job's status and model are unchanged.")
    assert f"Evaluation re-run {run['id']} requested by the provider" in messages
    listed = httpx.get(runs_url, headers=admin).json()
    assert listed["object"] == "list" and [r["id"] for r in listed["data"]] == [run["id"]]
    assert stack.api.store.get_bytes(result["report_key"]).startswith(b"{")
