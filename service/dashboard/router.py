"""The provider's ops dashboard: `GET /v1/admin/dashboard` (JSON, admin key) and the `/dashboard` page
(browser login with an admin key, kept in a signed HttpOnly cookie; the key never appears in a URL)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Cookie, Form, Request
from fastapi.responses import RedirectResponse, Response

from service.dashboard import login, render, service
from service.dashboard.schemas import Dashboard
from service.deps import AdminOrg, SessionDep, SettingsDep

router = APIRouter(prefix="/admin/dashboard", tags=["admin"])
pages = APIRouter(prefix="/dashboard", include_in_schema=False)

SessionCookie = Annotated[str | None, Cookie(alias=login.COOKIE)]


@router.get("", name="admin_dashboard")
def dashboard_data(session: SessionDep, settings: SettingsDep, admin: AdminOrg) -> Dashboard:
    return service.snapshot(session, settings)


@pages.get("", name="dashboard")
def dashboard_page(request: Request, session: SessionDep, settings: SettingsDep, token: SessionCookie = None):
    if token is None:
        return render.login_page(request)
    admin = login.admin_for_cookie(session, settings, token)
    if admin is None:
        response = render.login_page(request, "Your session has expired or its key was revoked; log in again.", 401)
        return _clear(response, request)
    return render.dashboard_page(request, service.snapshot(session, settings), admin.org_name)


@pages.post("/login", name="dashboard_login")
def dashboard_login(
    request: Request, session: SessionDep, settings: SettingsDep, api_key: Annotated[str, Form()] = ""
) -> Response:
    try:
        token = login.login(session, settings, api_key)
    except login.LoginFailed as exc:
        return render.login_page(request, str(exc), 401)
    response = RedirectResponse(request.url_for("dashboard").path, status_code=303)
    response.set_cookie(
        login.COOKIE,
        token,
        max_age=login.SESSION_SECONDS,
        path=request.url_for("dashboard").path,
        httponly=True,
        samesite="strict",
        secure=settings.public_url.startswith("https://") or request.url.scheme == "https",
    )
    return response


@pages.post("/logout", name="dashboard_logout")
def dashboard_logout(request: Request) -> Response:
    return _clear(RedirectResponse(request.url_for("dashboard").path, status_code=303), request)


def _clear(response: Response, request: Request) -> Response:
    response.delete_cookie(login.COOKIE, path=request.url_for("dashboard").path, httponly=True, samesite="strict")
    return response
