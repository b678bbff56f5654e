"""Hostile URLs, headers and JSON bodies on every API: NUL bytes, absurd lengths, odd metadata-filter keys and deep
nesting give a 4xx in OpenAI's error shape, never a 500, on SQLite and PostgreSQL (issue 14 items 2-3)."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest
from starlette.testclient import TestClient

from service.app import create_app
from service.edge import MAX_JSON_BODY, json_too_deep
from service.models import service as models_service
from tests.service.helpers import http_error, jsonl

BASE = "tiny-aligned"
LONG = "x" * 10_000


@pytest.fixture
def admin(api) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {api.new_key(admin=True)}"}) as c:
        yield c


@pytest.fixture
def job(http: httpx.Client) -> dict:
    """A job whose metadata keys would break a JSON path: a quote, a '$.' prefix, a bracket."""
    upload = http.post("/files", data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", jsonl(12))})
    metadata = {'a"b': "1", "$.x": "2", "[0]": "3"}
    r = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": upload.json()["id"], "metadata": metadata})
    assert r.status_code == 200, r.text
    return {**r.json(), "file_id": upload.json()["id"]}


NUL_PATHS = [
    ("GET", "/fine_tuning/jobs/ftjob-%00", "job_id"),
    ("POST", "/fine_tuning/jobs/%00/cancel", "job_id"),
    ("GET", "/fine_tuning/jobs/x%00y/events", "job_id"),
    ("GET", "/fine_tuning/jobs/%00/checkpoints", "job_id"),
    ("GET", "/files/file-%00", "file_id"),
    ("DELETE", "/files/%00", "file_id"),
    ("GET", "/files/%00/content", "file_id"),
    ("POST", "/files/%00/screen", "file_id"),
    ("GET", "/models/ft:%00", "model_id"),
    ("DELETE", "/models/%00", "model_id"),
]


@pytest.mark.parametrize(("method", "path", "param"), NUL_PATHS)
def test_nul_in_path_is_400_naming_the_parameter(http: httpx.Client, method: str, path: str, param: str) -> None:
    assert http_error(http.request(method, path, json={"model": BASE}))["param"] == param


@pytest.mark.parametrize(
    "path", ["/admin/webhooks/wh_%00", "/admin/base_models/alignments/%00", "/admin/fine_tuning/jobs?after=%00"]
)
def test_nul_in_admin_urls_is_400(admin: httpx.Client, path: str) -> None:
    assert http_error(admin.get(path))["param"] in ("endpoint_id", "alignment_id", "after")


NUL_QUERIES = [
    ("/fine_tuning/jobs?after=ftjob-%00", "after"),
    ("/fine_tuning/jobs?metadata[%00]=x", "metadata[]"),
    ("/fine_tuning/jobs?metadata[k]=%00", "metadata[k]"),
    ("/fine_tuning/jobs/ftjob-x/events?after=%00", "after"),
    ("/fine_tuning/jobs/ftjob-x/checkpoints?after=%00", "after"),
    ("/files?after=%00", "after"),
    ("/files?purpose=fine%00tune", "purpose"),
    ("/files/file-x/screen?model=%00", "model"),
]


@pytest.mark.parametrize(("path", "param"), NUL_QUERIES)
def test_nul_in_query_is_400_naming_the_parameter(http: httpx.Client, path: str, param: str) -> None:
    assert http_error(http.get(path))["param"] == param


def test_metadata_filter_takes_any_key(api, http: httpx.Client, admin: httpx.Client, job: dict) -> None:
    for key, value in {'a"b': "1", "$.x": "2", "[0]": "3"}.items():
        mine = http.get("/fine_tuning/jobs", params={f"metadata[{key}]": value})
        assert mine.status_code == 200 and [j["id"] for j in mine.json()["data"]] == [job["id"]], mine.text
        everyone = admin.get("/admin/fine_tuning/jobs", params={f"metadata[{key}]": value, "limit": 100})
        assert [j["id"] for j in everyone.json()["data"]] == [job["id"]], everyone.text
    for key in ("a'b", "$", '$.a"b', "\\", "\u2603"):
        r = http.get("/fine_tuning/jobs", params={f"metadata[{key}]": "1"})
        assert r.status_code == 200 and r.json()["data"] == [], r.text
    assert http.get("/fine_tuning/jobs", params={'metadata[a"b]': "2"}).json()["data"] == []


@pytest.mark.parametrize(
    "params",
    [{f"metadata[{'k' * 65}]": "v"}, {"metadata[k]": "v" * 513}, {f"metadata[k{i}]": "v" for i in range(17)}],
    ids=["long key", "long value", "17 filters"],
)
def test_overlong_metadata_filter_is_400(http: httpx.Client, admin: httpx.Client, params: dict) -> None:
    assert http_error(http.get("/fine_tuning/jobs", params=params))["param"] == "metadata"
    assert http_error(admin.get("/admin/fine_tuning/jobs", params=params))["param"] == "metadata"


def test_absurd_lengths_are_4xx(http: httpx.Client, admin: httpx.Client, job: dict) -> None:
    lists = ["/fine_tuning/jobs", f"/fine_tuning/jobs/{job['id']}/events", f"/fine_tuning/jobs/{job['id']}/checkpoints"]
    for path in [*lists, "/files"]:
        assert http_error(http.get(path, params={"after": LONG}))["param"] == "after", path
    assert http_error(admin.get("/admin/fine_tuning/jobs", params={"after": LONG}))["param"] == "after"
    for method, path in [("GET", "/fine_tuning/jobs/"), ("GET", "/files/"), ("GET", "/models/")]:
        assert http_error(http.request(method, path + LONG), 404)
    assert http_error(http.delete("/models/" + LONG), 404)
    assert http_error(http.get(f"/files/{job['file_id']}/screen", params={"model": LONG}), 404)["param"] == "model"


SCREEN_BODIES = [({"model": "tiny\x00"}, "model"), ({"model": LONG}, "model"), ({"model": ""}, "model")]


@pytest.mark.parametrize(("body", "param"), SCREEN_BODIES)
def test_screen_model_is_validated(http: httpx.Client, job: dict, body: dict, param: str) -> None:
    assert http_error(http.post(f"/files/{job['file_id']}/screen", json=body))["param"] == param


ADMIN_BODIES = [
    ("/admin/webhooks", {"url": "https://example.com/\x00"}, "url"),
    ("/admin/webhooks", {"url": "https://example.com/" + LONG}, "url"),
    ("/admin/webhooks", {"url": "https://example.com/", "org": "o\x00"}, "org"),
    ("/admin/webhooks", {"url": "https://example.com/", "org": LONG}, "org"),
    ("/admin/base_models", {"name": "n\x00", "path": "/tmp"}, "name"),
    ("/admin/base_models", {"name": "n", "path": "/tmp/\x00"}, "path"),
    ("/admin/base_models", {"name": "n", "path": "/tmp/" + LONG}, "path"),
    ("/admin/base_models", {"name": "n", "path": "/tmp", "gpu_class": "g" * 41}, "gpu_class"),
    ("/admin/base_models", {"name": "n", "path": "/tmp", "manifest": {"k\x00": 1}}, "manifest"),
    ("/admin/base_models", {"name": "n", "path": "/tmp", "manifest": {"k": 2**70}}, "manifest"),
    ("/admin/base_models/align", {"name": "n\x00"}, "name"),
    ("/admin/base_models/align", {"name": LONG}, "name"),
    ("/admin/base_models/align", {"name": "n", "source": "s\x00"}, "source"),
    ("/admin/base_models/align", {"name": "n", "gpu_class": "\x00"}, "gpu_class"),
    ("/admin/base_models/align", {"name": "n", "eval_harmful": 2**70}, "eval_harmful"),
]


@pytest.mark.parametrize(("path", "body", "param"), ADMIN_BODIES)
def test_admin_bodies_are_validated(admin: httpx.Client, path: str, body: dict, param: str) -> None:
    assert http_error(admin.post(path, json=body))["param"] == param


@pytest.mark.parametrize("path", ["/admin/webhooks", "/admin/base_models", "/admin/base_models/align"])
def test_deeply_nested_admin_body_is_400(admin: httpx.Client, path: str) -> None:
    body = b'{"name": "n", "manifest": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    assert "nests deeper" in http_error(admin.post(path, content=body))["message"]


@pytest.mark.parametrize("headers", [{"Content-Type": "application/json"}, {}])
def test_oversized_json_body_is_413(http: httpx.Client, headers: dict) -> None:
    body = b'{"model": "' + b"m" * (MAX_JSON_BODY + 1) + b'"}'
    r = http.post("/fine_tuning/jobs", content=body, headers=headers)
    assert http_error(r, 413)["code"] == "request_too_large" and r.headers["connection"] == "close"


def test_nul_in_header_never_reaches_a_route(api) -> None:
    """uvicorn refuses the request outright; behind a server that passes it on, the app itself answers 400."""
    host, port = urlsplit(api.base_url).hostname, urlsplit(api.base_url).port
    with socket.create_connection((host, port), timeout=10) as sock:
        sock.sendall(b"GET /v1/models HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer a\x00b\r\n\r\n")
        status_line = sock.recv(4096).split(b"\r\n")[0]
    assert status_line.split()[1] == b"400", status_line
    with TestClient(create_app(api.settings)) as client:
        r = client.post("/v1/fine_tuning/jobs", json={}, headers={"Idempotency-Key": "a\x00b"})
    assert http_error(r)["param"] == "idempotency-key"


def test_500_closes_the_connection(api, monkeypatch: pytest.MonkeyPatch) -> None:
    def boom(*_a, **_k):
        raise RuntimeError("boom")

    monkeypatch.setattr(models_service, "list_models", boom)
    r = httpx.get(f"{api.v1}/models", headers={"Authorization": f"Bearer {api.new_key()}"})
    assert r.status_code == 500 and r.headers["connection"] == "close"
    assert http_error(r, 500)["type"] == "server_error"


@pytest.mark.parametrize(
    ("body", "deep"),
    [
        (b"[" * 64 + b"]" * 64, False),
        (b"[" * 65 + b"]" * 65, True),
        (b'{"a": "' + b"[" * 500 + b'"}', False),  # brackets inside a string are text
        (b'{"a": "\\"' + b"[" * 500 + b'"}', False),  # an escaped quote does not end the string
        (b'["\\\\"' + b", [" * 70 + b"]" * 70 + b"]", True),  # an escaped backslash does
    ],
)
def test_json_depth_scan(body: bytes, deep: bool) -> None:
    assert json_too_deep(body) is deep
