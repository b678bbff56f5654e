"""`/openapi.json` is the contract: schemathesis generates requests from it against the live server, both stacks.

It must find no 5xx and no response whose status code, content type, headers or body the document does not allow.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.db import session_scope
from service.ids import new_id, now
from service.orm import CheckpointRow
from tests.live import LiveAPI, serve_asgi
from tests.service.helpers import http_error, upload

CHECKS = ",".join(
    [
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_headers_conformance",
        "response_schema_conformance",
    ]
)
MAX_EXAMPLES = int(os.environ.get("FTAAS_SCHEMATHESIS_EXAMPLES", "30"))
# Mixed into every generated string: what an attacker sends and the schema's own generator rarely reaches (a NUL
# is fine in Python and SQLite but an error in PostgreSQL text; over-long ids; path and SQL metacharacters).
HOSTILE = ["a\x00b", "\x00", "x" * 10_000, "../../etc/passwd", "' OR '1'='1", "$.a[0]", "\u202e\ufeff", "9" * 40]


def test_openapi_documents_openai_errors_not_422(api: LiveAPI) -> None:
    doc = httpx.get(f"{api.base_url}/openapi.json").json()
    assert doc["components"]["securitySchemes"] == {"bearerAuth": {"type": "http", "scheme": "bearer"}}
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            assert "422" not in op["responses"], (method, path)
            assert op["responses"]["400"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/Error"
            }
            if "{" in path:
                assert "404" in op["responses"], (method, path)
            if path.startswith("/v1/admin/"):
                assert "403" in op["responses"], (method, path)
            # Every route can be refused for a while (database down, API at its in-flight bound), and every
            # authenticated one counts against the org's quota: both documented with the retry-after the SDK reads.
            retryable = ["503"] + (["429"] if op.get("security") is not None else [])
            for code in retryable:
                response = op["responses"].get(code)
                assert response is not None, (method, path, code)
                assert response["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
                assert response["headers"]["retry-after"]["required"] is True, (method, path, code)


def test_a_database_outage_503_is_what_every_operation_documents(tmp_path: Path) -> None:
    """The database unreachable (a SQLite file in a missing directory): each documented operation answers the 503
    its OpenAPI entry describes, OpenAI's error shape with an integer retry-after."""
    settings = Settings(env="dev", home=tmp_path, database_url=f"sqlite:///{tmp_path}/missing/ftaas.db")
    app = create_app(settings)
    doc = app.openapi()
    client = TestClient(app)  # not entered: no lifespan, so no janitor pass against the missing database
    seen = 0
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            url = re.sub(r"\{[^}]+\}", "x", path)
            r = client.request(method.upper(), url, headers={"Authorization": "Bearer sk-test"}, json={})
            documented = op["responses"]["503"]  # a KeyError is the finding: an undocumented 503
            assert http_error(r, 503, "server_error")["code"] == "service_unavailable", (method, path)
            assert set(documented["headers"]) <= set(r.headers) and int(r.headers["retry-after"]) > 0
            seen += 1
    assert seen > 40  # every route of the API, not an empty document


def _real_ids_config(api: LiveAPI, key: str, path: Path) -> Path:
    """Half the generated ids are real objects of the caller's org, so requests get past the 404s to the logic.

    The job is cancelled first: following a live job's event stream would hold a request for the job's lifetime.
    """
    api.register_base("tiny-aligned")
    client = api.client(key)
    files = [upload(client).id for _ in range(2)]
    job = client.fine_tuning.jobs.create(model="tiny-aligned", training_file=files[0])
    client.fine_tuning.jobs.cancel(job.id)
    checkpoint = f"ft:tiny-aligned:org:x:{job.id}:ckpt-step-1"
    with session_scope(api.settings.database_url) as s:  # as a worker leaves one, so permission calls get past 404
        s.add(CheckpointRow(id=new_id("ftckpt_"), job_id=job.id, step_number=1, created_at=now(),
                            fine_tuned_model_checkpoint=checkpoint, object_prefix=f"jobs/{job.id}/checkpoints/step-1/"))
    hook = client.post("/admin/webhooks", body={"url": "http://127.0.0.1:9/hook"}, cast_to=httpx.Response).json()
    values = {"files": files, "jobs": [job.id], "models": ["tiny-aligned"], "webhooks": [hook["id"]],
              "checkpoints": [checkpoint]}
    bindings = {
        "path.file_id": "files",
        "body.training_file": "files",
        "body.validation_file": "files",
        "path.job_id": "jobs",
        "query.after": "jobs",
        "path.model_id": "models",
        "body.model": "models",
        "path.endpoint_id": "webhooks",
        "path.fine_tuned_model_checkpoint": "checkpoints",
    }
    values["hostile"] = HOSTILE
    # Another org than the key's: a generated quota of 0 requests there must not shut this run out.
    values["orgs"], bindings["path.org_id"] = [new_id("org-contract-")], "orgs"
    api.new_key(values["orgs"][0])
    pending = client.uploads.create(bytes=100, filename="u.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    values["uploads"], bindings["path.upload_id"] = [pending.id], "uploads"
    # json.dumps of a string or a list of strings is valid TOML (same basic-string escapes).
    lines = [f"[dictionaries.{name}]\nvalues = {json.dumps(ids)}" for name, ids in values.items()]
    lines.append('[generation.dictionaries]\nstring = { dictionary = "hostile", probability = 0.1 }')
    lines.append("[parameters]")
    lines += [f'"{param}" = {{ dictionary = "{name}", probability = 0.5 }}' for param, name in bindings.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def serving(api: LiveAPI, server) -> Iterator[str]:
    """An API server (same DB and store) whose completions go to an embedded inference server on the tiny model,
    so generated chat requests reach the model instead of stopping at "no backend"."""
    from worker.inference.main import build_app

    url, inference, thread = serve_asgi(build_app(api.settings, "tiny-aligned", model_dir=api.model_dir))
    yield server(inference_backends={"tiny-aligned": url}).removesuffix("/v1")
    inference.should_exit = True
    thread.join(10)


def test_schemathesis_run_finds_no_5xx_and_no_contract_violation(api: LiveAPI, serving: str, tmp_path: Path) -> None:
    key = api.new_key(admin=True)  # an admin key reaches every route, the admin ones included
    config = _real_ids_config(api, key, tmp_path / "schemathesis.toml")
    junit = tmp_path / "schemathesis.xml"
    cmd = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file",
        str(config),
        "run",
        f"{serving}/openapi.json",
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        CHECKS,
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        str(MAX_EXAMPLES),
        "--seed",
        "14",
        "--workers",
        "2",
        "--request-timeout",
        "30",
        "--no-color",
        "--report",
        "junit",
        "--report-junit-path",
        str(junit),
    ]
    run = subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=tmp_path)
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-5000:]
    assert "passed" in run.stdout, run.stdout[-5000:]
