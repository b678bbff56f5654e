"""HTML for the dashboard: a Jinja environment (autoescaped), small display filters, and strict page headers."""

from __future__ import annotations

import hashlib
import secrets
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request
from fastapi.responses import HTMLResponse, Response

from service.dashboard.alignments import AlignmentPage
from service.dashboard.jobs import JobPage
from service.dashboard.orgs import LIMITS, OrgPage
from service.dashboard.schemas import Dashboard

REFRESH_SECONDS = 5
# Customer bytes (a training line, report.json) go out as inert text: never sniffed into HTML, never scripted.
RAW_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'",
               "Cache-Control": "no-store"}  # fmt: skip
# report.html is the worker's page built from customer data: its own inline styles, no script, no same-origin.
SANDBOX_HEADERS = {**RAW_HEADERS, "Content-Security-Policy": "sandbox; default-src 'none'; style-src 'unsafe-inline'; "
                   "img-src data:"}  # fmt: skip


def ago(ts: float | None, now: float | None = None) -> str:
    if ts is None:
        return "–"
    s = max(0, int((time.time() if now is None else now) - ts))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s // size}{unit} ago"
    return f"{s}s ago"


def utc(ts: float | None) -> str:
    return "–" if ts is None else datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def pct(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}%"


def delta(value: float | None, base: float | None) -> str:
    return "" if value is None or base is None else f"{value - base:+.1f}"


_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
    autoescape=True,
    undefined=jinja2.StrictUndefined,
)
_env.filters.update(ago=ago, utc=utc, pct=pct, delta=delta)


def _headers(nonce: str) -> dict[str, str]:
    return {
        # Inline CSS, one inline script with a per-response nonce, nothing from elsewhere, no framing.
        "Content-Security-Policy": (
            f"default-src 'none'; style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; connect-src 'self'; "
            "form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
        ),
        # Not no-cache: that lets the browser store the page and revalidate it on its own (reload, back), and
        # the 304 would then freshen the stored headers with a new nonce that the stored body's script lacks
        # (RFC 9111 §4.3.4). no-store keeps this authenticated page out of every cache; the poll revalidates by hand.
        "Cache-Control": "no-store",
        # Not no-referrer: under it browsers send `Origin: null` on our own form POSTs, which csrf.same_origin
        # must refuse. same-origin still sends nothing to other sites.
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }


def _matches(if_none_match: str | None, etag: str) -> bool:
    """If-None-Match's weak comparison (RFC 9110 §13.1.2): ``*``, or one listed tag equal to ours, W/ or not."""
    tags = {tag.strip().removeprefix("W/") for tag in (if_none_match or "").split(",")}
    return "*" in tags or etag.removeprefix("W/") in tags


def _html(
    template: str, status_code: int, request: Request | None = None, clock: float | None = None, **context: Any
) -> Response:
    """A page. Given its GET ``request`` (a 200 page the script polls), it gets an ETag and may answer 304."""
    page = _env.get_template(template)
    etag = ""
    if request is not None and request.method == "GET" and status_code == 200:
        # The tag hashes the page rendered with its per-response values left blank (the CSP nonce, the clock stamp
        # of the snapshot's time, the tag itself), so it changes exactly when something else on the page does.
        # Weak: two bodies under one tag differ in those bytes (RFC 9110 §8.8.1); If-None-Match compares weakly.
        blank = page.render(nonce="", clock=None, etag="", refresh_s=REFRESH_SECONDS, **context)
        etag = f'W/"{hashlib.sha256(blank.encode()).hexdigest()}"'
    nonce = secrets.token_urlsafe(16)
    headers = _headers(nonce) | ({"ETag": etag} if etag else {})
    if etag and request is not None and _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    body = page.render(nonce=nonce, clock=clock, etag=etag, refresh_s=REFRESH_SECONDS, **context)
    return HTMLResponse(body, status_code=status_code, headers=headers)


def login_page(
    request: Request, csrf_token: str, message: str | None = None, status_code: int = 200, notice: str | None = None
) -> Response:
    return _html(
        "login.html",
        status_code,
        message=message,
        notice=notice,
        csrf_token=csrf_token,
        login_url=request.url_for("dashboard_login").path,
    )


def dashboard_page(request: Request, data: Dashboard, org_name: str, csrf_token: str, view: dict[str, Any]) -> Response:
    """The overview; ``view`` holds its charts, the filters asked for and the choices the filters offer."""
    return _html(
        "dashboard.html",
        200,
        request,
        data.generated_at,
        d=data,
        org_name=org_name,
        csrf_token=csrf_token,
        logout_url=request.url_for("dashboard_logout").path,
        json_url=request.url_for("admin_dashboard").path,
        job_url=request.url_for("dashboard").path + "/jobs",
        org_url=request.url_for("dashboard").path + "/orgs",
        alignment_url=request.url_for("dashboard").path + "/alignments",
        register_base_url=request.url_for("dashboard_register_base").path,
        **view,
    )


def job_page(
    request: Request, page: JobPage, org_name: str, csrf_token: str, message: str | None = None, status_code: int = 200
) -> Response:
    job_url = request.url_for("dashboard_job", job_id=page.job.id).path
    return _html(
        "job.html",
        status_code,
        request,
        p=page,
        org_name=org_name,
        csrf_token=csrf_token,
        message=message,
        dashboard_url=request.url_for("dashboard").path,
        logout_url=request.url_for("dashboard_logout").path,
        cancel_url=job_url + "/cancel",
        evaluate_url=job_url + "/evaluate",
        evaluations_url=job_url + "/evaluations",
        report_url=job_url + "/report.json",
        report_html_url=job_url + "/report.html",
        line_url=job_url + "/lines",
        org_url=request.url_for("dashboard_org", name=page.org).path,
    )


def org_page(
    request: Request, page: OrgPage, org_name: str, csrf_token: str, message: str | None = None, status_code: int = 200
) -> Response:
    name = page.quotas.org_name
    return _html(
        "org.html",
        status_code,
        request,
        p=page,
        limits=LIMITS,
        org_name=org_name,
        csrf_token=csrf_token,
        message=message,
        dashboard_url=request.url_for("dashboard").path,
        logout_url=request.url_for("dashboard_logout").path,
        quotas_url=request.url_for("dashboard_org_quotas", name=name).path,
        job_url=request.url_for("dashboard").path + "/jobs",
    )


def alignment_page(request: Request, page: AlignmentPage, org_name: str, csrf_token: str) -> Response:
    return _html(
        "alignment.html",
        200,
        request,
        p=page,
        org_name=org_name,
        csrf_token=csrf_token,
        dashboard_url=request.url_for("dashboard").path,
        logout_url=request.url_for("dashboard_logout").path,
    )


def message_page(request: Request, title: str, message: str, status_code: int) -> Response:
    dashboard_url = request.url_for("dashboard").path
    return _html("message.html", status_code, title=title, message=message, dashboard_url=dashboard_url)


def not_found_page(request: Request, message: str) -> Response:
    return message_page(request, "Not found", message, 404)
