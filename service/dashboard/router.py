"""The provider's ops dashboard: `GET /v1/admin/dashboard` (JSON, admin key) and the `/dashboard` page
(browser login with an admin key, kept as a server-side session behind an HttpOnly cookie; the key never appears in
a URL). Every POST must come from this server's own pages (service/dashboard/csrf.py) or gets a 403.
The job pages are service/dashboard/job_routes.py, the org pages service/dashboard/org_routes.py."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Query, Request
from fastapi.responses import RedirectResponse, Response

from service.dashboard import (
    alignment_routes,
    base_routes,
    csrf,
    job_routes,
    login,
    org_routes,
    render,
    service,
)
from service.dashboard.schemas import Dashboard
from service.dashboard.web import (
    REFUSED,
    CsrfField,
    FormCookie,
    SessionCookie,
    admin_or_login,
    clear,
    login_form,
    set_cookie,
)
from service.deps import AdminOrg, SessionDep, SettingsDep

router = APIRouter(prefix="/admin/dashboard", tags=["admin"])
pages = APIRouter(prefix="/dashboard", include_in_schema=False)

Filter = Annotated[str | None, Query(max_length=200)]
PLACEHOLDER_REFUSED = (
    "The dashboard is off: FTAAS_SECRET_KEY is a placeholder and FTAAS_ENV=dev was not set explicitly. "
    "Set a real FTAAS_SECRET_KEY, or FTAAS_ENV=dev for a local trial."
)


@router.get("", name="admin_dashboard")
def dashboard_data(session: SessionDep, settings: SettingsDep, admin: AdminOrg) -> Dashboard:
    return service.snapshot(session, settings)


@pages.get("", name="dashboard")
def dashboard_page(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    token: SessionCookie = None,
    nonce: FormCookie = None,
    org: Filter = None,
    status: Filter = None,
    model: Filter = None,
):
    admin = admin_or_login(request, session, settings, token, nonce)
    if isinstance(admin, Response):
        return admin
    filters = {"org": org or None, "status": status or None, "model": model or None}
    snapshot = service.snapshot(session, settings, **filters)
    view = service.page_view(session, settings, snapshot, filters)
    return render.dashboard_page(request, snapshot, admin.org_name, csrf.session_token(settings, token or ""), view)


@pages.post("/login", name="dashboard_login")
def dashboard_login(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    api_key: Annotated[str, Form()] = "",
    csrf_token: CsrfField = None,
    nonce: FormCookie = None,
    token: SessionCookie = None,
) -> Response:
    if not (csrf.same_origin(request, settings) and csrf.valid_form_token(settings, nonce, csrf_token)):
        return login_form(request, settings, nonce, REFUSED, 403)
    if login.refuses_placeholder_secret(settings):
        return login_form(request, settings, nonce, PLACEHOLDER_REFUSED, 403)
    try:
        new_token = login.login(session, api_key)
    except login.LoginFailed as exc:
        return login_form(request, settings, nonce, str(exc), 401)
    if token is not None:
        login.logout(session, token)  # one session per login: an older (perhaps planted) cookie ends here
    response = RedirectResponse(request.url_for("dashboard").path, status_code=303)
    set_cookie(response, request, settings, login.COOKIE, new_token, login.SESSION_SECONDS)
    return response


@pages.post("/logout", name="dashboard_logout")
def dashboard_logout(
    request: Request,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: CsrfField = None,
    token: SessionCookie = None,
) -> Response:
    if not csrf.same_origin(request, settings) or (
        token is not None and not csrf.valid_session_token(settings, token, csrf_token)
    ):
        return login_form(request, settings, None, REFUSED, 403)
    if token is not None:
        login.logout(session, token)
    return clear(RedirectResponse(request.url_for("dashboard").path, status_code=303), request)


pages.include_router(job_routes.router)
pages.include_router(org_routes.router)
pages.include_router(alignment_routes.router)
pages.include_router(base_routes.router)
