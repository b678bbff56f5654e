"""The dashboard as a browser drives it: POSTs carry an Origin header and the page's own hidden CSRF token."""

from __future__ import annotations

import re

import httpx

from tests.live import LiveAPI

_TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_token(page: httpx.Response) -> str:
    match = _TOKEN.search(page.text)
    assert match, page.text
    return match.group(1)


def browser(api: LiveAPI) -> httpx.Client:
    """A cookie-keeping client whose requests say they come from the dashboard's own origin."""
    return httpx.Client(base_url=api.base_url, headers={"Origin": api.base_url})


def log_in(client: httpx.Client, key: str) -> httpx.Response:
    form = client.get("/dashboard")
    return client.post("/dashboard/login", data={"api_key": key, "csrf_token": csrf_token(form)})


def log_out(client: httpx.Client) -> httpx.Response:
    page = client.get("/dashboard")
    return client.post("/dashboard/logout", data={"csrf_token": csrf_token(page)})
