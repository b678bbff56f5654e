"""The dashboard pages' ETags (service/dashboard/render.py): the same tag while nothing but the nonce and the clock
stamp changed, a 304 without a body for an If-None-Match that holds it, a new tag once the page shows something new.
First on render's own functions, then over HTTP as the page's refresh script sends it."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator

import httpx
import pytest
from fastapi import FastAPI, Request
from sqlalchemy import update

from service.dashboard import render
from service.dashboard.router import pages, router
from service.dashboard.schemas import Dashboard, Queues
from service.db import session_scope
from service.orm import JobRow
from tests.live import LiveAPI
from tests.service.dashboard.browser import browser, log_in
from tests.service.helpers import upload

_APP = FastAPI()
_APP.include_router(router, prefix="/v1")
_APP.include_router(pages)
VIEW = {
    "filters": {"org": None, "status": None, "model": None},
    "choices": {"org": [], "status": [], "model": []},
    "charts": {"over_time": "", "status": "", "queues": "", "hs": ""},
}


def request(method: str = "GET", **headers: str) -> Request:
    raw = [(name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()]
    scope = {"type": "http", "method": method, "path": "/dashboard", "query_string": b"", "headers": raw,
             "router": _APP.router, "scheme": "http", "server": ("testserver", 80), "root_path": ""}  # fmt: skip
    return Request(scope)


def overview(at: float, req: Request | None = None, screens: dict[str, int] | None = None) -> httpx.Response:
    queues = Queues(broker="filesystem", queues=[], jobs_by_status={})
    data = Dashboard(generated_at=at, lease_seconds=30, queues=queues, workers=[], jobs=[], alignments=[],
                     base_models=[], screens_by_status=screens or {})  # fmt: skip
    r = render.dashboard_page(req or request(), data, "ops", "token", VIEW)
    return httpx.Response(r.status_code, headers=r.headers.items(), content=r.body)


def nonce(r: httpx.Response) -> str:
    match = re.search(r"'nonce-([^']+)'", r.headers["content-security-policy"])
    assert match, r.headers
    return match.group(1)


def test_only_the_nonce_and_the_clock_change_so_the_etag_stays() -> None:
    first, later = overview(1_700_000_000), overview(1_700_000_007)
    assert '<span id="clock">2023-11-14 22:13:20 UTC</span>' in first.text
    assert '<span id="clock">2023-11-14 22:13:27 UTC</span>' in later.text
    assert nonce(first) != nonce(later) and f'nonce="{nonce(first)}"' in first.text
    assert first.headers["etag"] == later.headers["etag"] and first.headers["etag"].startswith('W/"')
    assert f"let etag = {json.dumps(first.headers['etag'])};" in first.text  # the first poll already asks for a 304
    assert overview(1_700_000_000, screens={"passed": 1}).headers["etag"] != first.headers["etag"]


@pytest.mark.parametrize("sent", ["{tag}", "{bare}", '"other", {tag}', "*"])
def test_a_matching_if_none_match_gets_304_without_a_body(sent: str) -> None:
    tag = overview(1_700_000_000).headers["etag"]
    r = overview(1_700_000_009, request(if_none_match=sent.format(tag=tag, bare=tag.removeprefix("W/"))))
    assert r.status_code == 304 and r.content == b"" and "content-length" not in r.headers
    assert r.headers["etag"] == tag and r.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in r.headers["content-security-policy"] and r.headers["x-content-type-options"]


def test_a_stale_tag_or_no_get_gets_the_page() -> None:
    tag = overview(1_700_000_000).headers["etag"]
    assert overview(1_700_000_000, request(if_none_match='W/"stale"')).status_code == 200
    posted = overview(1_700_000_000, request("POST", if_none_match=tag))
    assert posted.status_code == 200 and "etag" not in posted.headers
    for page in (render.login_page(request(), "token"), render.not_found_page(request(), "No such job.")):
        assert "etag" not in page.headers


@pytest.fixture
def tab(api: LiveAPI) -> Iterator[httpx.Client]:
    with browser(api) as client:
        assert log_in(client, api.new_key(admin=True)).status_code == 303
        yield client


def test_the_job_page_answers_304_until_the_job_changes(
    api: LiveAPI, gpu_base: tuple[str, str], tab: httpx.Client
) -> None:
    client = api.client()
    job = client.fine_tuning.jobs.create(model=gpu_base[0], training_file=upload(client, 12).id)
    url = f"/dashboard/jobs/{job.id}"
    first, second = tab.get(url), tab.get(url)
    tag = first.headers["etag"]
    assert first.status_code == 200 and second.headers["etag"] == tag and nonce(first) != nonce(second)
    same = tab.get(url, headers={"If-None-Match": tag})
    assert same.status_code == 304 and same.content == b"" and same.headers["etag"] == tag

    with session_scope(api.settings.database_url) as session:
        session.execute(update(JobRow).where(JobRow.id == job.id).values(status="queued"))
    changed = tab.get(url, headers={"If-None-Match": tag})
    assert changed.status_code == 200 and changed.headers["etag"] != tag and 'class="badge s-queued"' in changed.text


def test_the_overview_answers_304_while_nothing_changed(api: LiveAPI, tab: httpx.Client) -> None:
    # Three tries: on the shared PostgreSQL another test's row may read "3s ago", then "4s ago", between two requests.
    for _ in range(3):
        tag = tab.get("/dashboard").headers["etag"]
        if tab.get("/dashboard", headers={"If-None-Match": tag}).status_code == 304:
            break
    else:
        pytest.fail("the overview never answered 304")
