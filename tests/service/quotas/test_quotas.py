"""Per-org quotas over real HTTP on both stacks (SQLite counters, Redis counters), with the official SDK."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator

import httpx
import openai
import pytest

from tests.live import LiveAPI
from tests.service.helpers import error_of, http_error, jsonl, upload

BASE = "tiny-aligned"


def _org(api: LiveAPI) -> tuple[str, str]:
    name = f"org-q-{uuid.uuid4().hex[:8]}"
    return name, api.new_key(name)


@pytest.fixture
def admin(api: LiveAPI) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {api.new_key(admin=True)}"}) as c:
        yield c


def _limited(exc: openai.APIStatusError, limit: str) -> dict:
    """One 429 convention for every source (OpenAI's), the limit named in our additive header and the message."""
    assert exc.status_code == 429 and int(exc.response.headers["retry-after"]) >= 1
    error = error_of(exc)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded"), error
    assert (exc.type, exc.code) == ("requests", "rate_limit_exceeded")  # what the SDK's error object exposes
    assert exc.response.headers["x-ftaas-quota"] == limit and limit in error["message"], error
    return error


def test_requests_per_minute_answers_429_then_the_sdk_retries_after_the_window(
    api: LiveAPI, server: Callable[..., str]
) -> None:
    v1 = server(quota_requests_per_minute=3, quota_request_window_s=2)
    _, key = _org(api)
    client = openai.OpenAI(api_key=key, base_url=v1, max_retries=0)
    with pytest.raises(openai.RateLimitError) as caught:
        for _ in range(30):  # a fixed window: 4 requests may straddle its boundary, so go on until one is refused
            client.files.list()
    error = _limited(caught.value, "requests_per_minute")
    assert "3 requests per 2 s" in error["message"], error
    assert 1 <= int(caught.value.response.headers["retry-after"]) <= 2
    patient = openai.OpenAI(api_key=key, base_url=v1, max_retries=3)
    started = time.monotonic()
    for _ in range(4):  # the 4th exhausts the window again; the SDK sleeps `retry-after` and succeeds
        patient.files.list()
    assert time.monotonic() - started < 10


def test_an_org_override_lifts_the_provider_default_and_delete_restores_it(
    api: LiveAPI, server: Callable[..., str], admin: httpx.Client
) -> None:
    v1 = server(quota_requests_per_minute=1, quota_request_window_s=3600)  # no boundary mid-test
    name, key = _org(api)
    client = openai.OpenAI(api_key=key, base_url=v1, max_retries=0)
    client.models.list()
    with pytest.raises(openai.RateLimitError):
        client.models.list()
    # The admin API on the default server (no provider limit there), so this call is not refused itself.
    body = admin.put(f"/admin/orgs/{name}/quotas", json={"requests_per_minute": 100}).json()
    assert body["overrides"]["requests_per_minute"] == 100 and body["org_name"] == name, body
    client.models.list()
    shown = httpx.get(f"{v1}/admin/orgs/{body['org_id']}/quotas", headers=admin.headers).json()
    assert shown["limits"]["requests_per_minute"] == 100 and shown["usage"]["requests_this_window"] >= 3, shown
    assert admin.delete(f"/admin/orgs/{name}/quotas").json()["overrides"]["requests_per_minute"] is None
    with pytest.raises(openai.RateLimitError):
        client.models.list()


def test_queued_jobs_limit_refuses_job_create(api: LiveAPI, admin: httpx.Client) -> None:
    api.register_base(BASE)
    name, key = _org(api)
    client = api.client(key)
    assert admin.put(f"/admin/orgs/{name}/quotas", json={"queued_jobs": 1}).status_code == 200
    training = upload(client).id
    client.fine_tuning.jobs.create(model=BASE, training_file=training)
    with pytest.raises(openai.RateLimitError) as caught:
        client.fine_tuning.jobs.create(model=BASE, training_file=training)
    error = _limited(caught.value, "queued_jobs")
    assert "queued_jobs limit 1" in error["message"], error
    assert caught.value.response.headers["retry-after"] == str(api.settings.quota_queued_retry_after_s)


def test_upload_bytes_per_day_counts_files_and_declared_uploads(api: LiveAPI, admin: httpx.Client) -> None:
    name, key = _org(api)
    client = api.client(key)
    data = jsonl(12)
    limit = 2 * len(data) + 1000  # one file (body framing included) fits, a second does not
    assert admin.put(f"/admin/orgs/{name}/quotas", json={"upload_bytes_per_day": limit}).status_code == 200
    client.files.create(file=("a.jsonl", data), purpose="fine-tune")
    with pytest.raises(openai.RateLimitError) as caught:
        client.uploads.create(bytes=limit, filename="u.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    error = _limited(caught.value, "upload_bytes_per_day")
    assert error["param"] == "bytes" and str(limit) in error["message"], error
    with pytest.raises(openai.RateLimitError) as caught:
        client.files.create(file=("b.jsonl", data + data), purpose="fine-tune")
    _limited(caught.value, "upload_bytes_per_day")
    used = admin.get(f"/admin/orgs/{name}/quotas").json()["usage"]["upload_bytes_today"]
    assert len(data) < used <= limit, used  # refused bytes are not counted


def test_a_streamed_upload_without_a_size_is_stopped_as_it_passes_the_limit(
    api: LiveAPI, admin: httpx.Client
) -> None:
    name, key = _org(api)
    assert admin.put(f"/admin/orgs/{name}/quotas", json={"upload_bytes_per_day": 100}).status_code == 200
    boundary = "quota-boundary"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n\r\n'
    ).encode()

    def body() -> Iterator[bytes]:  # a generator: httpx sends it chunked, with no Content-Length
        yield head
        yield jsonl(12)
        yield f"\r\n--{boundary}--\r\n".encode()

    r = httpx.post(
        f"{api.v1}/files",
        content=body(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    error = http_error(r, 429)
    assert (error["type"], error["code"]) == ("requests", "rate_limit_exceeded"), error
    assert r.headers["x-ftaas-quota"] == "upload_bytes_per_day" and int(r.headers["retry-after"]) >= 1, error
    assert openai.OpenAI(api_key=key, base_url=api.v1, max_retries=0).files.list().data == []


def test_quota_routes_are_admin_only_and_name_unknown_orgs(api: LiveAPI, admin: httpx.Client) -> None:
    name, key = _org(api)
    plain = {"Authorization": f"Bearer {key}"}
    for method in ("GET", "PUT", "DELETE"):
        r = httpx.request(method, f"{api.v1}/admin/orgs/{name}/quotas", headers=plain, json={})
        assert http_error(r, 403)["type"] == "permission_error"
    assert http_error(admin.get("/admin/orgs/org-nope/quotas"), 404)["param"] == "org_id"
    bad = admin.put(f"/admin/orgs/{name}/quotas", json={"running_jobs": -1})
    assert http_error(bad, 400)["param"] == "running_jobs"
    assert http_error(admin.put(f"/admin/orgs/{name}/quotas", json={"bogus": 1}), 400)["param"] == "bogus"
