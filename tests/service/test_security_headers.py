"""Security headers on what the server sends (nosniff everywhere, a strict CSP on HTML such as report.html), and
/docs, whose Swagger UI would load JS from a CDN, off unless a developer asks for it."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.config import Settings
from service.security_headers import HTML_CSP
from tests.live import LiveAPI
from tests.service.helpers import upload

REPORT = b"<!doctype html><html><head><style>p{}</style></head><body><p>report</p></body></html>"


def test_report_html_may_load_run_or_frame_nothing(api: LiveAPI) -> None:
    name = "hdr-base"
    api.register_base(name)
    key = api.new_key()
    client = api.client(key)
    job = client.fine_tuning.jobs.create(model=name, training_file=upload(client).id)
    url = f"{api.v1}/fine_tuning/jobs/{job.id}/report.html"
    auth = {"Authorization": f"Bearer {key}"}

    not_yet = httpx.get(url, headers=auth)  # not evaluated yet: a JSON error, never sniffed into anything else
    assert not_yet.status_code == 400 and not_yet.headers["x-content-type-options"] == "nosniff"
    assert "content-security-policy" not in not_yet.headers
    elsewhere = httpx.get(url, headers={"Authorization": f"Bearer {api.new_key()}"})
    assert elsewhere.status_code == 404 and elsewhere.headers["x-content-type-options"] == "nosniff"

    api.store.put_bytes(f"jobs/{job.id}/report.html", REPORT)
    page = httpx.get(url, headers=auth)
    assert page.status_code == 200 and page.content == REPORT and page.headers["content-type"].startswith("text/html")
    assert page.headers["content-security-policy"] == HTML_CSP
    directives = {d.strip().split(" ")[0]: d.strip() for d in HTML_CSP.split(";")}
    assert directives["default-src"] == "default-src 'none'"  # so no script-src: no script runs at all
    assert directives["frame-ancestors"] == "frame-ancestors 'none'"
    assert "script-src" not in directives and "unsafe-inline" in directives["style-src"]  # its one <style> block
    assert page.headers["x-content-type-options"] == "nosniff" and page.headers["x-frame-options"] == "DENY"
    assert page.headers["referrer-policy"] == "no-referrer"


def test_the_dashboard_keeps_its_own_policy(api: LiveAPI) -> None:
    """Its refresh script runs under a per-response nonce; the middleware must not replace that CSP."""
    page = httpx.get(f"{api.base_url}/dashboard")
    assert "script-src 'nonce-" in page.headers["content-security-policy"]
    assert page.headers["referrer-policy"] == "same-origin"  # csrf.same_origin needs the Origin header
    assert page.headers["x-frame-options"] == "DENY" and page.headers["x-content-type-options"] == "nosniff"


def test_docs_are_off_but_the_openapi_document_is_not(api: LiveAPI) -> None:
    assert api.settings.env == "dev" and not api.settings.docs
    for path in ("/docs", "/redoc", "/docs/oauth2-redirect"):
        assert httpx.get(api.base_url + path).status_code == 404, path
    assert httpx.get(f"{api.base_url}/openapi.json").json()["openapi"].startswith("3.")


def _app(tmp_path: Path, **settings: object) -> TestClient:
    return TestClient(create_app(Settings(home=tmp_path, **settings)), raise_server_exceptions=False)


def test_docs_need_dev_mode_and_ftaas_docs(tmp_path: Path) -> None:
    prod = _app(tmp_path, env="prod", secret_key="s" * 40, docs=True)
    assert prod.get("/docs").status_code == 404 and prod.get("/openapi.json").status_code == 200
    dev = _app(tmp_path, docs=True).get("/docs")
    assert dev.status_code == 200 and "swagger-ui" in dev.text
    # the CDN it loads from is allowed there, and nowhere else
    assert "script-src https://cdn.jsdelivr.net" in dev.headers["content-security-policy"]
    assert "cdn.jsdelivr.net" not in HTML_CSP


@pytest.mark.parametrize("secret", ["dev", "change-me", "", "SECRET"])
def test_settings_refuse_a_placeholder_secret_outside_dev(secret: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="FTAAS_SECRET_KEY must be set"):
        Settings(home=tmp_path, env="prod", secret_key=secret)
    assert Settings(home=tmp_path, env="dev", secret_key=secret).secret_key == secret


def test_even_a_crash_is_not_sniffed(tmp_path: Path) -> None:
    client = _app(tmp_path)

    @client.app.get("/boom")  # type: ignore[attr-defined]
    def boom() -> None:
        raise RuntimeError("boom")

    crashed = client.get("/boom")
    assert crashed.status_code == 500 and crashed.json()["error"]["type"] == "server_error"
    assert crashed.headers["x-content-type-options"] == "nosniff"
