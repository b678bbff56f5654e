"""Registering a base model from the overview page's form, behind its CSRF token."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response

from service.dashboard import bases, render
from service.dashboard.web import REFUSED, CsrfField, SessionCookie, admin_or_login, login_form, posted_by_our_page
from service.deps import SessionDep, SettingsDep, StoreDep
from service.errors import InvalidRequest

router = APIRouter(prefix="/base_models")
Field = Annotated[str, Form(max_length=1024)]


@router.post("", name="dashboard_register_base")
def register_base(
    request: Request,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    csrf_token: CsrfField = None,
    token: SessionCookie = None,
    name: Field = "",
    path: Field = "",
    gpu_class: Field = "default",
    aligned: Annotated[bool, Form()] = False,
) -> Response:
    admin = admin_or_login(request, session, settings, token, None)
    if isinstance(admin, Response):
        return admin
    if not posted_by_our_page(request, settings, token, csrf_token):
        return login_form(request, settings, None, REFUSED, 403)
    try:
        bases.register(session, store, name=name, path=path, gpu_class=gpu_class, aligned=aligned)
    except InvalidRequest as exc:
        return render.message_page(request, "Base model not registered", exc.message, 400)
    return RedirectResponse(request.url_for("dashboard").path + "#base-models", status_code=303)
