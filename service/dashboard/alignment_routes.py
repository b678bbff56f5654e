"""The alignment page (`/dashboard/alignments/{id}`), for an admin session."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response

from service.dashboard import alignments, csrf, render
from service.dashboard.web import FormCookie, SessionCookie, admin_or_login
from service.deps import SessionDep, SettingsDep
from service.errors import NotFound

router = APIRouter(prefix="/alignments")


@router.get("/{alignment_id}", name="dashboard_alignment")
def alignment_page(
    request: Request,
    alignment_id: str,
    session: SessionDep,
    settings: SettingsDep,
    token: SessionCookie = None,
    nonce: FormCookie = None,
):
    admin = admin_or_login(request, session, settings, token, nonce)
    if isinstance(admin, Response):
        return admin
    try:
        page = alignments.alignment_page(session, alignment_id)
    except NotFound as exc:
        return render.not_found_page(request, exc.message)
    return render.alignment_page(request, page, admin.org_name, csrf.session_token(settings, token or ""))
