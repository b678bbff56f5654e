"""The provider's ops dashboard: `GET /v1/admin/dashboard` (JSON, admin key) and the `/dashboard` page
(browser login with an admin key, kept as a server-side session behind an HttpOnly cookie; the key never appears in
a URL). Every POST must come from this server's own pages (service/dashboard/csrf.py) or gets a 403."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import RedirectResponse, Response

from service.config import Settings
from service.dashboard import csrf, login, render, service
from service.dashboard.schemas import Dashboard
from service.deps import AdminOrg, SessionDep, SettingsDep

router = APIRouter(prefix="/admin/dashboard", tags=["admin"])
pages = APIRouter(prefix="/dashboard", include_in_schema=False)

SessionCookie = Annotated[str | None, Cookie(alias=login.COOKIE)]
FormCookie = Annotated[str | None, Cookie(alias=csrf.FORM_COOKIE)]
CsrfField = Annotated[str | None, Form(alias=csrf.FIELD)]

REFUSED = "That request did not come from this dashboard's own page (Origin or CSRF token); nothing was done."
PLACEHOLDER_REFUSED = (
    "The dashboard is off: FTAAS_SECRET_KEY is a placeholder and FTAAS_ENV=dev was not set explicitly. "
    "Set a real FTAAS_SECRET_KEY, or FTAAS_ENV=dev for a local trial."
)


@router.get("", name="admin_dashboard")
def dashboard_data(session: SessionDep, settings: SettingsDep, admin: AdminOrg) -> Dashboard:
    return service.snapshot(session, settings)


@pages.get("", name="dashboard")
def dashboard_page(
    request: Request, session: SessionDep, settings: SettingsDep, token: SessionCookie = None, nonce: FormCookie = None
):
    if token is None:
        return _login_form(request, settings, nonce)
    admin = login.admin_for_cookie(session, token)
    if admin is None:
        message = "Your session has expired or was logged out, or its key was revoked; log in again."
        return _clear(_login_form(request, settings, nonce, message, 401), request)
    snapshot = service.snapshot(session, settings)
    return render.dashboard_page(request, snapshot, admin.org_name, csrf.session_token(settings, token))


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
        return _login_form(request, settings, nonce, REFUSED, 403)
    if login.refuses_placeholder_secret(settings):
        return _login_form(request, settings, nonce, PLACEHOLDER_REFUSED, 403)
    try:
        new_token = login.login(session, api_key)
    except login.LoginFailed as exc:
        return _login_form(request, settings, nonce, str(exc), 401)
    if token is not None:
        login.logout(session, token)  # one session per login: an older (perhaps planted) cookie ends here
    response = RedirectResponse(request.url_for("dashboard").path, status_code=303)
    _set_cookie(response, request, settings, login.COOKIE, new_token, login.SESSION_SECONDS)
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
        return _login_form(request, settings, None, REFUSED, 403)
    if token is not None:
        login.logout(session, token)
    return _clear(RedirectResponse(request.url_for("dashboard").path, status_code=303), request)


def _login_form(
    request: Request, settings: Settings, nonce: str | None, message: str | None = None, status_code: int = 200
) -> Response:
    """The login page with its pre-session CSRF token; an existing form cookie is kept, so two open tabs both work."""
    nonce = nonce or csrf.new_form_nonce()
    notice = login.dev_secret_notice(settings)
    response = render.login_page(request, csrf.form_token(settings, nonce), message, status_code, notice)
    _set_cookie(response, request, settings, csrf.FORM_COOKIE, nonce, csrf.FORM_SECONDS)
    return response


def _set_cookie(response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=request.url_for("dashboard").path,
        httponly=True,
        samesite="strict",
        secure=settings.public_url.startswith("https://") or request.url.scheme == "https",
    )


def _clear(response: Response, request: Request) -> Response:
    response.delete_cookie(login.COOKIE, path=request.url_for("dashboard").path, httponly=True, samesite="strict")
    return response
