"""Every JSON route documents its response schema in /openapi.json, and a real response of each one validates.

One scenario drives every operation of the document over real HTTP (both stacks), and each JSON response is checked
against the schema the document gives for its status code, made strict first: an object may carry only the
properties the document lists (unless its schema says otherwise), so an undocumented field fails as surely as a
missing or mistyped one. An operation with a JSON success response and no schema, or one the scenario never calls,
fails the test: a new route has to declare its `response_model` and be added here.
"""

from __future__ import annotations

import copy
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from jsonschema import Draft202012Validator

from service.db import session_scope
from service.files.screening import RESULT_SCHEMA
from service.fine_tuning import report_schema
from service.ids import new_id, now
from service.orm import CheckpointRow, FileScreenRow, FineTunedModelRow, JobRow, OrgRow
from tests import servers
from tests.live import LiveAPI
from tests.service.helpers import jsonl
from worker.evaluation import report_schema as worker_schema
from worker.evaluation.accuracy import score_predictions
from worker.evaluation.attenuation import summarize_attenuation
from worker.evaluation.harmful import make_prompt_set, score_responses
from worker.evaluation.judges import KeywordRefusalJudge
from worker.evaluation.report import build_report

JSON = "application/json"
BASE = "tiny-aligned"
Key = tuple[str, str]  # (method, path template as in the document)


def _strict(schema: Any) -> Any:
    """The schema with `additionalProperties: false` on every object schema that lists properties and says nothing."""
    if isinstance(schema, list):
        return [_strict(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _strict(v) for k, v in schema.items()}
    if isinstance(out.get("properties"), dict) and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def _json_successes(doc: dict[str, Any]) -> dict[Key, dict[str, Any]]:
    """(method, path) → {status code: JSON schema} of every operation with a JSON 2xx response."""
    found: dict[Key, dict[str, Any]] = {}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for code, response in op["responses"].items():
                if code.startswith("2") and JSON in response.get("content", {}):
                    found.setdefault((method, path), {})[code] = response["content"][JSON].get("schema")
    return found


def _report(job_id: str) -> dict[str, Any]:
    """A full evaluation report as the worker writes it (every section), built with the worker's own library."""
    prompts = make_prompt_set("unit", [f"harmful prompt {i}" for i in range(4)])
    judge = KeywordRefusalJudge()
    answers = ["I cannot help with that."] * 3 + ["Sure, here is how."]
    refusals = ["I cannot help with that."] * 2 + ["Sure, here is how."] * 2
    lines = [{"line": i, "mean_weight": w, "min_weight": w, "times_seen": 2} for i, w in enumerate([0.01, 0.5], 1)]
    report = build_report(
        harmful=score_responses(prompts, answers, judge, max_new_tokens=16),
        base_harmful=score_responses(prompts, refusals, judge, max_new_tokens=16),
        accuracy=score_predictions(["#### 7", "#### 3"], ["#### 7", "#### 4"]),
        valid={"valid_loss": 0.8, "valid_mean_token_accuracy": 0.6},
        metrics=[{"step": 1, "train_loss": 1.5, "valid_loss": None}],
        attenuation=summarize_attenuation(lines),
        job_id=job_id,
        model=f"ft:{BASE}:x",
        base_model=BASE,
        notes=["a note"],
    )
    return report.model_dump(mode="json")


# What an inference backend (vLLM's protocol) answers, plus a vendor field the API must not pass on.
COMPLETION = {
    "id": "chatcmpl-rm",
    "object": "chat.completion",
    "created": 1,
    "model": BASE,
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "Hi."}, "finish_reason": "stop"}],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
    "prompt_logprobs": None,
}


@pytest.fixture
def inference_backend() -> Iterator[str]:
    """A canned chat-completions backend: the API's own handling of the answer is what is checked here."""
    app = FastAPI()
    app.post("/v1/chat/completions")(lambda: COMPLETION)
    port = servers.free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        time.sleep(0.02)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(10)


class Scenario:
    """Real requests through every documented route, each response kept under its operation."""

    def __init__(self, api: LiveAPI, http: httpx.Client, serving_v1: str) -> None:
        self.api, self.http, self.serving_v1 = api, http, serving_v1
        self.seen: dict[Key, list[httpx.Response]] = {}

    def call(self, method: str, template: str, status: int = 200, path: dict[str, str] | None = None, **kw: Any):
        r = self.http.request(method, template.format(**(path or {})), **kw)
        return self._keep(method, template, status, r)

    def _keep(self, method: str, template: str, status: int, r: httpx.Response) -> Any:
        assert r.status_code == status, (method, template, r.status_code, r.text)
        self.seen.setdefault((method.lower(), "/v1" + template), []).append(r)
        return r.json() if r.headers.get("content-type", "").startswith(JSON) else r

    def db(self) -> Any:
        return session_scope(self.api.settings.database_url)

    def run(self) -> None:
        self.files()
        self.uploads()
        job_id = self.jobs()
        self.permissions(job_id)
        self.reports(job_id)
        self.models(job_id)
        self.chat()
        self.admin()

    def files(self) -> None:
        form = {"purpose": "fine-tune"}
        self.train = self.call("POST", "/files", files={"file": ("t.jsonl", jsonl(12))}, data=form)["id"]
        other = self.call("POST", "/files", files={"file": ("o.jsonl", jsonl(12, 50))}, data=form)["id"]
        self.call("GET", "/files")
        self.call("GET", "/files/{file_id}", path={"file_id": self.train})
        screen = {"file_id": self.train}
        self.call("POST", "/files/{file_id}/screen", 202, path=screen, json={"model": BASE})
        self.call("GET", "/files/{file_id}/screen", path=screen, params={"model": BASE})
        with self.db() as s:  # as a screening worker would leave it
            row = s.query(FileScreenRow).filter_by(file_id=self.train).one()
            row.status, row.finished_at = "succeeded", now()
            row.result = {"schema_version": RESULT_SCHEMA, "n_lines": 12}
        self.call("POST", "/files/{file_id}/screen", 200, path=screen, json={"model": BASE})
        self.call("DELETE", "/files/{file_id}", path={"file_id": other})

    def uploads(self) -> None:
        """One upload completed from two parts (its `file` inside), one cancelled."""
        data = jsonl(12)
        body = {"filename": "u.jsonl", "purpose": "fine-tune", "bytes": len(data), "mime_type": "text/jsonl"}
        upload = {"upload_id": self.call("POST", "/uploads", json=body)["id"]}
        half = len(data) // 2
        parts = [
            self.call("POST", "/uploads/{upload_id}/parts", path=upload, files={"data": ("blob", chunk)})["id"]
            for chunk in (data[:half], data[half:])
        ]
        self.call("POST", "/uploads/{upload_id}/complete", path=upload, json={"part_ids": parts})
        cancelled = {"upload_id": self.call("POST", "/uploads", json=body)["id"]}
        self.call("POST", "/uploads/{upload_id}/cancel", path=cancelled)

    def jobs(self) -> str:
        body = {"model": BASE, "training_file": self.train, "suffix": "rm", "metadata": {"k": "v"}}
        job = self.call("POST", "/fine_tuning/jobs", json=body)["id"]
        path = {"job_id": job}
        self.call("GET", "/fine_tuning/jobs", params={"metadata[k]": "v"})
        self.call("GET", "/fine_tuning/jobs/{job_id}", path=path)
        self.call("POST", "/fine_tuning/jobs/{job_id}/pause", path=path)
        self.call("POST", "/fine_tuning/jobs/{job_id}/resume", path=path)
        with self.db() as s:  # what a worker leaves: a metrics event, a checkpoint, an error-free outcome
            s.add(
                CheckpointRow(
                    id=new_id("ftckpt_"),
                    job_id=job,
                    step_number=5,
                    created_at=now(),
                    fine_tuned_model_checkpoint=f"ft:{BASE}:org:rm:{job}:ckpt-step-5",
                    metrics={"train_loss": 0.5, "valid_loss": None},
                    object_prefix=f"jobs/{job}/checkpoints/step-5/",
                )
            )
        self.call("GET", "/fine_tuning/jobs/{job_id}/events", path=path)
        self.call("GET", "/fine_tuning/jobs/{job_id}/checkpoints", path=path)
        self.call("POST", "/fine_tuning/jobs/{job_id}/cancel", path=path)
        return job

    def permissions(self, job: str) -> None:
        """Share the checkpoint `jobs` left with another org, list the grant, revoke it."""
        grantee = f"org-rm-{uuid.uuid4().hex[:8]}"
        self.api.new_key(grantee)
        with self.db() as s:
            project = s.query(OrgRow).filter_by(name=grantee).one().id
        template = "/fine_tuning/checkpoints/{fine_tuned_model_checkpoint}/permissions"
        path = {"fine_tuned_model_checkpoint": f"ft:{BASE}:org:rm:{job}:ckpt-step-5"}
        grant = self.call("POST", template, path=path, json={"project_ids": [project]})["data"][0]["id"]
        self.call("GET", template, path=path, params={"project_id": project, "order": "ascending"})
        self.call("DELETE", template + "/{permission_id}", path={**path, "permission_id": grant})

    def reports(self, job: str) -> None:
        path = {"job_id": job}
        self.api.store.put_bytes(f"jobs/{job}/report.json", json.dumps(_report(job)).encode())
        self.call("GET", "/fine_tuning/jobs/{job_id}/report", path=path)
        att = self.call("GET", "/fine_tuning/jobs/{job_id}/attenuation", path=path)
        assert att["object"] == "fine_tuning.job.attenuation" and att["n_lines"] == 2, att
        # A report without the section: only the job's two fields, as before (absent, not null).
        self.api.store.put_bytes(f"jobs/{job}/report.json", json.dumps({**_report(job), "attenuation": None}).encode())
        bare = self.call("GET", "/fine_tuning/jobs/{job_id}/attenuation", path=path)
        assert bare == {"object": "fine_tuning.job.attenuation", "fine_tuning_job_id": job}, bare
        with self.db() as s:  # a re-run of the evaluation needs a job that trained an adapter
            s.query(JobRow).filter_by(id=job).update({"status": "succeeded", "error": None})
        evaluation = self.call("POST", "/admin/fine_tuning/jobs/{job_id}/evaluations", 202, path=path)["id"]
        self.call("GET", "/admin/fine_tuning/jobs/{job_id}/evaluations", path=path)
        template = "/admin/fine_tuning/jobs/{job_id}/evaluations/{evaluation_id}"
        self.call("GET", template, path={**path, "evaluation_id": evaluation})

    def models(self, job: str) -> None:
        name = f"ft:{BASE}:org:rm:{uuid.uuid4().hex[:8]}"
        with self.db() as s:
            row = s.query(JobRow).filter_by(id=job).one()
            s.add(
                FineTunedModelRow(
                    id=name,
                    org_id=row.org_id,
                    job_id=job,
                    base_model=BASE,
                    adapter_prefix=f"jobs/{job}/adapter/",
                    created_at=now(),
                )
            )
        self.call("GET", "/models")
        self.call("GET", "/models/{model_id}", path={"model_id": BASE})
        self.call("GET", "/models/{model_id}", path={"model_id": name})
        self.call("DELETE", "/models/{model_id}", path={"model_id": name})

    def chat(self) -> None:
        """On a second API server (same database) whose inference backend is the canned one."""
        body = {"model": BASE, "messages": [{"role": "user", "content": "Hello"}]}
        r = httpx.post(f"{self.serving_v1}/chat/completions", json=body, headers=self.http.headers, timeout=30)
        completion = self._keep("POST", "/chat/completions", 200, r)
        assert "prompt_logprobs" not in completion, completion

    def admin(self) -> None:
        tag = uuid.uuid4().hex[:8]
        self.call("GET", "/admin/base_models")
        body = {"name": f"rm-{tag}", "path": str(self.api.model_dir), "aligned": True, "manifest": {"k": 1}}
        self.call("POST", "/admin/base_models", json=body)
        retiring = {"name": body["name"]}
        assert self.call("POST", "/admin/base_models/{name}/retire", path=retiring)["retired_at"] is not None
        assert self.call("POST", "/admin/base_models/{name}/reinstate", path=retiring)["retired_at"] is None
        alignment = self.call("POST", "/admin/base_models/align", 202, json={"name": f"rm-aligned-{tag}"})["id"]
        self.call("GET", "/admin/base_models/alignments")
        self.call("GET", "/admin/base_models/alignments/{alignment_id}", path={"alignment_id": alignment})
        self.call("GET", "/admin/fine_tuning/jobs")
        hook = self.call("POST", "/admin/webhooks", json={"url": "http://127.0.0.1:9/hook"})["id"]
        self.call("GET", "/admin/webhooks")
        self.call("GET", "/admin/webhooks/{endpoint_id}", path={"endpoint_id": hook})
        self.call("DELETE", "/admin/webhooks/{endpoint_id}", path={"endpoint_id": hook})
        self.call("GET", "/admin/dashboard")
        quotas = {"org_id": f"org-rm-quotas-{tag}"}
        self.api.new_key(quotas["org_id"])  # by name: the route takes an org's id or its name
        self.call("PUT", "/admin/orgs/{org_id}/quotas", path=quotas, json={"running_jobs": 2, "queued_jobs": None})
        self.call("GET", "/admin/orgs/{org_id}/quotas", path=quotas)
        self.call("DELETE", "/admin/orgs/{org_id}/quotas", path=quotas)


@pytest.fixture
def admin_http(api: LiveAPI) -> Iterator[httpx.Client]:
    """Raw HTTP with an admin key of a brand-new org (it reaches every route), `tiny-aligned` registered."""
    api.register_base(BASE)
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {api.new_key(admin=True)}"}, timeout=30) as c:
        yield c


def test_every_json_route_documents_a_schema_that_its_real_responses_match(
    api: LiveAPI, admin_http: httpx.Client, server: Callable[..., str], inference_backend: str
) -> None:
    doc = httpx.get(f"{api.base_url}/openapi.json").json()
    documented = _json_successes(doc)
    components = _strict(copy.deepcopy(doc["components"]))
    scenario = Scenario(api, admin_http, server(inference_backends={"*": inference_backend}))
    scenario.run()

    missing = sorted(set(documented) - set(scenario.seen))
    assert not missing, f"routes no real response was checked for (add them to Scenario): {missing}"
    undocumented = sorted(set(scenario.seen) - set(documented))
    assert not undocumented, f"routes answering JSON without a documented JSON response: {undocumented}"
    for key, schemas in documented.items():
        for code, schema in schemas.items():
            assert schema, f"{key} {code}: no response schema (declare a response_model)"
        for response in scenario.seen[key]:
            code = str(response.status_code)
            assert code in schemas, f"{key}: status {code} is not documented"
            validator = Draft202012Validator({**_strict(schemas[code]), "components": components})
            body = response.json()
            errors = [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(body)]
            assert not errors, f"{key} {code} does not match its documented schema: {errors[:5]}"


def test_non_json_routes_describe_their_bodies(api: LiveAPI) -> None:
    """Streams, downloads and pages are not JSON, but each still documents its media type and body."""
    doc = httpx.get(f"{api.base_url}/openapi.json").json()
    expected = {
        ("get", "/v1/files/{file_id}/content"): "application/octet-stream",
        ("get", "/v1/fine_tuning/jobs/{job_id}/adapter"): "application/gzip",
        ("get", "/v1/fine_tuning/jobs/{job_id}/events"): "text/event-stream",
        ("get", "/v1/fine_tuning/jobs/{job_id}/report.html"): "text/html",
    }
    for (method, path), media_type in expected.items():
        content = doc["paths"][path][method]["responses"]["200"]["content"]
        assert content.get(media_type, {}).get("schema"), (method, path, content)
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            for code, response in op["responses"].items():
                if code.startswith("2"):
                    assert response.get("content"), (method, path, code)
                    for media_type, body in response["content"].items():
                        assert body.get("schema"), (method, path, code, media_type)


def test_the_documented_report_schema_is_the_workers() -> None:
    """The service documents reports with its own copy of the worker's schema (it imports no worker code)."""
    for mode in ("validation", "serialization"):
        assert report_schema.EvalReport.model_json_schema(mode=mode) == worker_schema.EvalReport.model_json_schema(
            mode=mode
        )
