"""The org page (`/dashboard/orgs/{name}`) against a live server, both backends: quotas set from its form are the
ones the admin API and the job queue apply; a forged or malformed form changes nothing."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, csrf_token, log_in
from tests.service.helpers import upload


@pytest.fixture
def tab(api: LiveAPI) -> Iterator[httpx.Client]:
    with browser(api) as client:
        assert log_in(client, api.new_key(admin=True)).status_code == 303
        yield client


def quotas(api: LiveAPI, org: str) -> dict:
    r = httpx.get(f"{api.v1}/admin/orgs/{org}/quotas", headers={"Authorization": f"Bearer {api.new_key(admin=True)}"})
    assert r.status_code == 200, r.text
    return r.json()


def test_quotas_set_on_the_page_hold_for_the_org(api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client) -> None:
    org = f"quota-{uuid.uuid4().hex[:8]}"
    client = api.client(api.new_key(org))
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    page = tab.get(f"/dashboard/orgs/{org}")
    assert page.status_code == 200 and f'href="/dashboard/jobs/{job.id}"' in page.text
    assert 'id="limit-queued_jobs">no limit<' in page.text

    form = {"csrf_token": csrf_token(page), "queued_jobs": "1", "running_jobs": "", "upload_bytes_per_day": "",
            "requests_per_minute": ""}  # fmt: skip
    forged = tab.post(f"/dashboard/orgs/{org}/quotas", data={**form, "csrf_token": "x"})
    assert forged.status_code == 403 and quotas(api, org)["overrides"]["queued_jobs"] is None
    bad = tab.post(f"/dashboard/orgs/{org}/quotas", data={**form, "queued_jobs": "-3"})
    assert bad.status_code == 400 and "whole number" in bad.text
    assert quotas(api, org)["overrides"]["queued_jobs"] is None

    saved = tab.post(f"/dashboard/orgs/{org}/quotas", data=form)
    assert saved.status_code == 303 and saved.headers["location"] == f"/dashboard/orgs/{org}"
    body = quotas(api, org)
    assert body["overrides"]["queued_jobs"] == 1 and body["limits"]["queued_jobs"] == 1
    assert 'id="limit-queued_jobs">1<' in tab.get(f"/dashboard/orgs/{org}").text
    with pytest.raises(openai.RateLimitError):  # its one waiting job fills the quota the page set
        client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)

    cleared = tab.post(f"/dashboard/orgs/{org}/quotas", data={**form, "queued_jobs": ""})
    assert cleared.status_code == 303 and quotas(api, org)["overrides"]["queued_jobs"] is None
    assert tab.get("/dashboard/orgs/no-such-org").status_code == 404
