"""Registering, retiring and reinstating a base model from the overview page's forms, behind its CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from service.base_models import service as base_models
from service.config import Settings
from service.dashboard import bases, render
from service.dashboard.web import CsrfField, SessionCookie, admin_posting
from service.deps import SessionDep, SettingsDep, StoreDep
from service.errors import InvalidRequest, NotFound

router = APIRouter(prefix="/base_models")
Field = Annotated[str, Form(max_length=1024)]


def _back(request: Request) -> Response:
    return RedirectResponse(request.url_for("dashboard").path + "#base-models", status_code=303)


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
    admin = admin_posting(request, session, settings, token, csrf_token)
    if isinstance(admin, Response):
        return admin
    try:
        bases.register(session, store, name=name, path=path, gpu_class=gpu_class, aligned=aligned)
    except InvalidRequest as exc:
        return render.message_page(request, "Base model not registered", exc.message, 400)
    return _back(request)


def _change(
    request: Request,
    session: Session,
    settings: Settings,
    token: str | None,
    csrf_token: str | None,
    change: Callable[[], object],
) -> Response:
    admin = admin_posting(request, session, settings, token, csrf_token)
    if isinstance(admin, Response):
        return admin
    try:
        change()
    except NotFound as exc:  # deleted from the database since the page was drawn
        return render.not_found_page(request, exc.message)
    return _back(request)


@router.post("/{name}/retire", name="dashboard_retire_base")
def retire_base(
    request: Request,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: CsrfField = None,
    token: SessionCookie = None,
) -> Response:
    return _change(request, session, settings, token, csrf_token, lambda: base_models.retire(session, name))


@router.post("/{name}/reinstate", name="dashboard_reinstate_base")
def reinstate_base(
    request: Request,
    name: str,
    session: SessionDep,
    settings: SettingsDep,
    csrf_token: CsrfField = None,
    token: SessionCookie = None,
) -> Response:
    return _change(request, session, settings, token, csrf_token, lambda: base_models.reinstate(session, name))
