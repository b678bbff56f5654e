"""What every dashboard page route shares: the session and form cookies, the admin behind a session (or the login
page to answer with instead), and the check that a POST came from one of this server's own pages."""

from __future__ import annotations

from typing import Annotated

from fastapi import Cookie, Form, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.config import Settings
from service.dashboard import csrf, login, render

SessionCookie = Annotated[str | None, Cookie(alias=login.COOKIE)]
FormCookie = Annotated[str | None, Cookie(alias=csrf.FORM_COOKIE)]
CsrfField = Annotated[str | None, Form(alias=csrf.FIELD)]

REFUSED = "That request did not come from this dashboard's own page (Origin or CSRF token); nothing was done."


def posted_by_our_page(request: Request, settings: Settings, token: str | None, given: str | None) -> bool:
    """A logged-in POST's Origin is this server and its form carries the session's CSRF token."""
    return (
        token is not None
        and csrf.same_origin(request, settings)
        and csrf.valid_session_token(settings, token, given)
    )


def admin_or_login(
    request: Request, session: Session, settings: Settings, token: str | None, nonce: str | None
) -> Principal | Response:
    """The admin behind the session cookie, or the login page to answer with instead."""
    if token is None:
        return login_form(request, settings, nonce)
    admin = login.admin_for_cookie(session, token)
    if admin is None:
        message = "Your session has expired or was logged out, or its key was revoked; log in again."
        return clear(login_form(request, settings, nonce, message, 401), request)
    return admin


def admin_posting(
    request: Request, session: Session, settings: Settings, token: str | None, given: str | None
) -> Principal | Response:
    """The admin behind a form POST that came from our own page, or the page to answer with instead (every provider
    action's guard: the login page, or a 403 that did nothing)."""
    admin = admin_or_login(request, session, settings, token, None)
    if isinstance(admin, Response):
        return admin
    if not posted_by_our_page(request, settings, token, given):
        return login_form(request, settings, None, REFUSED, 403)
    return admin


def login_form(
    request: Request, settings: Settings, nonce: str | None, message: str | None = None, status_code: int = 200
) -> Response:
    """The login page with its pre-session CSRF token; an existing form cookie is kept, so two open tabs both work."""
    nonce = nonce or csrf.new_form_nonce()
    notice = login.dev_secret_notice(settings)
    response = render.login_page(request, csrf.form_token(settings, nonce), message, status_code, notice)
    set_cookie(response, request, settings, csrf.FORM_COOKIE, nonce, csrf.FORM_SECONDS)
    return response


def set_cookie(response: Response, request: Request, settings: Settings, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=request.url_for("dashboard").path,
        httponly=True,
        samesite="strict",
        secure=settings.public_url.startswith("https://") or request.url.scheme == "https",
    )


def clear(response: Response, request: Request) -> Response:
    response.delete_cookie(login.COOKIE, path=request.url_for("dashboard").path, httponly=True, samesite="strict")
    return response
