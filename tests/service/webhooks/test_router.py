"""Admin API for webhook endpoints over real HTTP, and an event to a created endpoint verified by the SDK."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator

import httpx
import pytest
from openai.types.webhooks import FineTuningJobSucceededWebhookEvent

from service.db import session_scope
from service.ids import new_id, now
from service.orm import JobRow
from service.webhooks.delivery import notify_job_outcome
from tests.service.webhooks.test_delivery import Receiver


class Admin:
    """httpx against /v1/admin/webhooks; every endpoint it creates is deleted at teardown, because the live
    server is shared and a leftover provider-wide endpoint would receive other tests' job events."""

    def __init__(self, api, key: str) -> None:
        self.base = f"{api.v1}/admin/webhooks"
        self.headers = {"Authorization": f"Bearer {key}"}
        self.created: list[str] = []

    def create(self, **body) -> httpx.Response:
        r = httpx.post(self.base, json=body, headers=self.headers)
        if r.status_code == 200:
            self.created.append(r.json()["id"])
        return r

    def list_ids(self) -> list[str]:
        r = httpx.get(self.base, headers=self.headers)
        assert r.status_code == 200 and r.json()["object"] == "list"
        assert all("secret" not in e for e in r.json()["data"])
        return [e["id"] for e in r.json()["data"]]

    def delete(self, endpoint_id: str) -> httpx.Response:
        return httpx.delete(f"{self.base}/{endpoint_id}", headers=self.headers)


@pytest.fixture
def admin(api) -> Iterator[Admin]:
    a = Admin(api, api.new_key(admin=True))
    yield a
    for endpoint_id in a.created:
        a.delete(endpoint_id)


def test_create_list_retrieve_delete(api, admin: Admin) -> None:
    org = f"hooks-{uuid.uuid4().hex[:8]}"
    api.new_key(org)
    r = admin.create(url="https://example.invalid/hooks", org=org)
    assert r.status_code == 200, r.text
    hook = r.json()
    assert set(hook) == {"id", "object", "url", "org_id", "secret", "created_at"}
    assert hook["id"].startswith("wh_") and hook["object"] == "webhook_endpoint"
    assert hook["org_id"].startswith("org-") and hook["url"] == "https://example.invalid/hooks"
    assert hook["secret"].startswith("whsec_") and len(base64.b64decode(hook["secret"][6:])) == 32
    provider = admin.create(url="http://127.0.0.1:9/provider").json()
    assert provider["org_id"] is None
    assert {hook["id"], provider["id"]} <= set(admin.list_ids())
    got = httpx.get(f"{admin.base}/{hook['id']}", headers=admin.headers).json()
    assert got == {k: v for k, v in hook.items() if k != "secret"}

    r = admin.delete(hook["id"])
    assert r.status_code == 200 and r.json() == {"id": hook["id"], "object": "webhook_endpoint.deleted",
                                                 "deleted": True}
    assert hook["id"] not in admin.list_ids() and provider["id"] in admin.list_ids()
    assert admin.delete(hook["id"]).status_code == 404
    r = httpx.get(f"{admin.base}/{hook['id']}", headers=admin.headers)
    assert r.status_code == 404 and r.json()["error"]["code"] == "not_found"


def test_non_admin_keys_are_forbidden(api, admin: Admin) -> None:
    hook_id = admin.create(url="https://example.invalid/x").json()["id"]
    user = {"Authorization": f"Bearer {api.new_key()}"}
    for method, url in [("POST", admin.base), ("GET", admin.base), ("GET", f"{admin.base}/{hook_id}"),
                        ("DELETE", f"{admin.base}/{hook_id}")]:
        r = httpx.request(method, url, headers=user, json={"url": "https://example.invalid/y"})
        assert r.status_code == 403, (method, url, r.text)
        assert r.json()["error"]["type"] == "permission_error"
    assert httpx.get(admin.base).status_code == 401
    assert hook_id in admin.list_ids()


@pytest.mark.parametrize("body, param", [
    ({"url": "ftp://example.invalid/x"}, "url"),
    ({"url": "not a url"}, "url"),
    ({"url": "http://"}, "url"),
    ({"url": "https://example.invalid/" + "x" * 2048}, "url"),
    ({}, "url"),
    ({"url": "https://example.invalid/x", "org": "no-such-org-" + uuid.uuid4().hex}, "org"),
    ({"url": "https://example.invalid/x", "secret": "mine"}, "secret"),
])
def test_bad_requests(admin: Admin, body: dict, param: str) -> None:
    r = admin.create(**body)
    assert r.status_code == 400, r.text
    assert set(r.json()) == {"error"} and r.json()["error"]["param"] == param


def test_created_endpoint_receives_a_verified_job_event(api, admin: Admin) -> None:
    org = f"hooks-{uuid.uuid4().hex[:8]}"
    api.new_key(org)
    receiver = Receiver(secret="")
    try:
        hook = admin.create(url=receiver.url(), org=org).json()
        receiver.secret = hook["secret"]
        job_id = new_id("ftjob-")
        with session_scope(api.settings.database_url) as session:
            session.add(JobRow(id=job_id, org_id=hook["org_id"], model="tiny", training_file="file-x",
                               status="succeeded", seed=1, created_at=now(), finished_at=now()))
        with session_scope(api.settings.database_url) as session:
            assert notify_job_outcome(session, api.settings, job_id, "succeeded") >= 1
    finally:
        receiver.close()
    event = receiver.calls[0]["event"]
    assert isinstance(event, FineTuningJobSucceededWebhookEvent) and event.data.id == job_id
