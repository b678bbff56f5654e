"""X-Request-ID on every answer of the live API (early refusals included) and the access line that carries it."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator

import httpx
import pytest

from service import logs
from service.edge import MAX_JSON_BODY
from tests.live import LiveAPI


@pytest.fixture
def access_lines() -> Iterator[list[dict]]:
    """The API's access lines as the JSON formatter writes them (the server runs in this process)."""
    lines: list[dict] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(json.loads(self.format(record)))

    handler = Collect()
    handler.setFormatter(logs.JsonFormatter())
    handler.addFilter(logs.ContextFilter())
    logger = logging.getLogger("ftaas.access")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    yield lines
    logger.removeHandler(handler)
    logger.setLevel(level)


def _line(lines: list[dict], request_id: str) -> dict:
    # The access line is written once the response has been sent, so it may trail the client's read a little.
    found = [line for line in lines if line.get("request_id") == request_id]
    assert len(found) == 1, lines[-5:]
    return found[0]


@pytest.mark.parametrize(
    ("method", "path", "body", "status"),
    [
        ("GET", "/healthz", None, 200),
        ("GET", "/v1/no/such/route", None, 404),
        ("POST", "/v1/fine_tuning/jobs", b"[" * 100 + b"]" * 100, 400),  # the edge's depth refusal
        ("POST", "/v1/fine_tuning/jobs", b" " * (MAX_JSON_BODY + 1), 413),  # the edge's size refusal
        ("GET", "/v1/models", None, 401),
    ],
)
def test_a_safe_request_id_is_echoed_and_logged(
    api: LiveAPI, access_lines: list[dict], method: str, path: str, body: bytes | None, status: int
) -> None:
    request_id = f"client-{status}:trace_1.a"
    headers = {"X-Request-ID": request_id, "content-type": "application/json"}
    response = httpx.request(method, api.base_url + path, content=body, headers=headers, timeout=30)
    assert response.status_code == status and response.headers["x-request-id"] == request_id
    line = _wait_for_line(access_lines, request_id)
    assert (line["method"], line["path"], line["status"]) == (method, path, status)
    assert line["level"] == "INFO" and line["duration_ms"] >= 0 and line["logger"] == "ftaas.access"


@pytest.mark.parametrize("sent", [None, "", "x" * 129, "bad id", "a\tb", "ünïcode"])
def test_an_unsafe_or_missing_request_id_is_replaced_by_a_new_one(api: LiveAPI, sent: str | None) -> None:
    headers = {} if sent is None else {"X-Request-ID": sent.encode()}
    first = httpx.get(api.base_url + "/healthz", headers=headers)
    second = httpx.get(api.base_url + "/healthz", headers=headers)
    ids = {first.headers["x-request-id"], second.headers["x-request-id"]}
    assert len(ids) == 2 and all(i.startswith("req_") and len(i) == 36 for i in ids)


def test_the_access_line_names_the_org_the_job_and_the_route_template(
    api: LiveAPI, access_lines: list[dict]
) -> None:
    key = api.new_key()
    client = api.client(key)
    listed = client.models.with_raw_response.list()
    response = httpx.get(
        api.v1 + "/fine_tuning/jobs/ftjob-unknown", headers={"Authorization": f"Bearer {key}", "X-Request-ID": "r-1"}
    )
    assert response.status_code == 404 and response.headers["x-request-id"] == "r-1"
    line = _wait_for_line(access_lines, "r-1")
    assert line["org_id"].startswith("org-") and line["job_id"] == "ftjob-unknown"
    assert line["route"] == "/v1/fine_tuning/jobs/{job_id}" and line["status"] == 404
    assert line["message"] == f"GET /v1/fine_tuning/jobs/{{job_id}} 404 {line['duration_ms']:.1f} ms"
    assert listed.headers["x-request-id"].startswith("req_")  # the SDK's requests get one too
    assert _wait_for_line(access_lines, listed.headers["x-request-id"])["org_id"] == line["org_id"]


def _wait_for_line(lines: list[dict], request_id: str) -> dict:
    deadline = time.monotonic() + 5
    while not any(line.get("request_id") == request_id for line in lines) and time.monotonic() < deadline:
        time.sleep(0.01)
    return _line(lines, request_id)
