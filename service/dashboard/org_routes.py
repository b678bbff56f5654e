"""The org page (`/dashboard/orgs/{name}`): its quotas and recent jobs, and setting its quotas behind the page's
CSRF token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from service.dashboard import csrf, orgs, render
from service.dashboard.web import (
    CsrfField,
    FormCookie,
    SessionCookie,
    admin_or_login,
    admin_posting,
)
from service.deps import SessionDep, SettingsDep
from service.errors import InvalidRequest, NotFound

router = APIRouter(prefix="/orgs")
Limit = Annotated[str, Form(max_length=40)]


@router.get("/{name}", name="dashboard_org")
def org_page(
    request: Request,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    token: SessionCookie = None,
    nonce: FormCookie = None,
):
    admin = admin_or_login(request, session, settings, token, nonce)
    if isinstance(admin, Response):
        return admin
    try:
        page = orgs.org_page(session, settings, name)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    return render.org_page(request, page, admin.org_name, csrf.session_token(settings, token or ""))


@router.post("/{name}/quotas", name="dashboard_org_quotas")
def set_quotas(
    request: Request,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: CsrfField = None,
    token: SessionCookie = None,
    running_jobs: Limit = "",
    queued_jobs: Limit = "",
    upload_bytes_per_day: Limit = "",
    requests_per_minute: Limit = "",
) -> Response:
    admin = admin_posting(request, session, settings, token, csrf_token)
    if isinstance(admin, Response):
        return admin
    form = {"running_jobs": running_jobs, "queued_jobs": queued_jobs, "upload_bytes_per_day": upload_bytes_per_day,
            "requests_per_minute": requests_per_minute}  # fmt: skip
    try:
        orgs.set_quotas(session, name, form)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    except InvalidRequest as exc:
        page = orgs.org_page(session, settings, name)
        form_token = csrf.session_token(settings, token or "")
        return render.org_page(request, page, admin.org_name, form_token, exc.message, 400)
    return RedirectResponse(request.url_for("dashboard_org", name=name).path, status_code=303)
