"""The job page and the provider's actions on a job: `/dashboard/jobs/{id}` (any org's job, for an admin session),
its raw training lines, its reports, and cancel and evaluation re-runs behind the page's CSRF token."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy.orm import Session

from service.config import Settings
from service.dashboard import csrf, jobs, render
from service.dashboard.web import (
    CsrfField,
    FormCookie,
    SessionCookie,
    admin_or_login,
    admin_posting,
)
from service.deps import SessionDep, SettingsDep, StoreDep
from service.errors import InvalidRequest, NotFound
from service.storage import ObjectStore

router = APIRouter(prefix="/jobs")


@router.get("/{job_id}", name="dashboard_job")
def job_page(
    request: Request,
    job_id: str,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    token: SessionCookie = None,
    nonce: FormCookie = None,
    sort: Annotated[str, Query(max_length=10)] = "weight",
):
    admin = admin_or_login(request, session, settings, token, nonce)
    if isinstance(admin, Response):
        return admin
    try:
        page = jobs.job_page(session, store, settings, job_id, sort)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    return render.job_page(request, page, admin.org_name, csrf.session_token(settings, token or ""))


ACTIONS: dict[str, Callable[[Session, Settings, str], object]] = {"cancel": jobs.cancel, "evaluate": jobs.evaluate}


def _act(action: str, request: Request, job_id: str, session: Session, store: ObjectStore, settings: Settings,
         csrf_token: str | None, token: str | None) -> Response:  # fmt: skip
    """A provider action on a job, behind the page's CSRF token; back to its page, or the page saying why not."""
    admin = admin_posting(request, session, settings, token, csrf_token)
    if isinstance(admin, Response):
        return admin
    try:
        ACTIONS[action](session, settings, job_id)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    except InvalidRequest as exc:  # it ended meanwhile, or a re-run is already under way: say so on its page
        page = jobs.job_page(session, store, settings, job_id)
        form_token = csrf.session_token(settings, token or "")
        return render.job_page(request, page, admin.org_name, form_token, exc.message, 400)
    return RedirectResponse(request.url_for("dashboard_job", job_id=job_id).path, status_code=303)


@router.post("/{job_id}/cancel", name="dashboard_job_cancel")
def cancel_job(
    request: Request, job_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep,
    csrf_token: CsrfField = None, token: SessionCookie = None,
) -> Response:  # fmt: skip
    return _act("cancel", request, job_id, session, store, settings, csrf_token, token)


@router.post("/{job_id}/evaluate", name="dashboard_job_evaluate")
def evaluate_job(
    request: Request, job_id: str, session: SessionDep, store: StoreDep, settings: SettingsDep,
    csrf_token: CsrfField = None, token: SessionCookie = None,
) -> Response:  # fmt: skip
    """Queue a re-run of the job's evaluation; the page then follows it until it ends."""
    return _act("evaluate", request, job_id, session, store, settings, csrf_token, token)


@router.get("/{job_id}/lines/{number}", name="dashboard_job_line")
def training_line(
    request: Request,
    job_id: str,
    number: Annotated[int, Path(ge=1)],
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    token: SessionCookie = None,
    nonce: FormCookie = None,
) -> Response:
    """One raw line of the job's training file, as plain text: customer data is never rendered as HTML here."""
    admin = admin_or_login(request, session, settings, token, nonce)
    if isinstance(admin, Response):
        return admin
    try:
        line = jobs.raw_line(session, store, job_id, number)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    return Response(line, media_type="text/plain; charset=utf-8", headers=render.RAW_HEADERS)


@router.get("/{job_id}/evaluations/{evaluation_id}/{name}", name="dashboard_job_evaluation_report")
@router.get("/{job_id}/{name}", name="dashboard_job_report")
def job_report(
    request: Request,
    job_id: str,
    name: str,
    session: SessionDep,
    store: StoreDep,
    settings: SettingsDep,
    token: SessionCookie = None,
    nonce: FormCookie = None,
    evaluation_id: str | None = None,
) -> Response:
    """report.json as a download, report.html in a sandbox (the worker wrote it from customer data); the job's
    own, or one re-evaluation's."""
    admin = admin_or_login(request, session, settings, token, nonce)
    if isinstance(admin, Response):
        return admin
    if name not in ("report.json", "report.html"):
        return render.not_found_page(request, f"No such page: {name}.")
    try:
        body = jobs.report_file(session, store, job_id, name, evaluation_id)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    if name == "report.json":
        stem = f"{job_id}-{evaluation_id}" if evaluation_id else job_id
        disposition = {"Content-Disposition": f'attachment; filename="{stem}-report.json"'}
        return Response(body, media_type="application/json", headers={**render.RAW_HEADERS, **disposition})
    return Response(body, media_type="text/html; charset=utf-8", headers=render.SANDBOX_HEADERS)
