"""Request dependencies with readable aliases: SessionDep, CurrentOrg, AdminOrg, SettingsDep, StoreDep."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import HTTPBearer
from sqlalchemy.orm import Session

from service import logs
from service.auth.service import Principal, authenticate, require_admin
from service.config import Settings
from service.db import session_scope
from service.quotas import service as quotas
from service.storage import ObjectStore


def get_settings_dep(request: Request) -> Settings:
    return request.app.state.settings


def get_store(request: Request) -> ObjectStore:
    return request.app.state.store


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]


def get_session(settings: SettingsDep) -> Iterator[Session]:
    """One transaction per request: services never commit; this commits on success and rolls back on error."""
    with session_scope(settings.database_url) as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session, scope="function")]


# Declared for the OpenAPI document (a `bearerAuth` security scheme instead of an optional header parameter);
# auto_error=False because `authenticate` words the 401s in OpenAI's shape itself.
_bearer = HTTPBearer(auto_error=False, scheme_name="bearerAuth")


def get_principal(
    request: Request, session: SessionDep, settings: SettingsDep, _: Annotated[object, Security(_bearer)]
) -> Principal:
    principal = authenticate(session, request.headers.get("authorization"))
    logs.bind(org_id=principal.org_id)
    quotas.check_request(session, settings, principal.org_id)  # every authenticated route counts, admin ones too
    return principal


CurrentOrg = Annotated[Principal, Depends(get_principal)]


def get_admin(principal: CurrentOrg) -> Principal:
    return require_admin(principal)


AdminOrg = Annotated[Principal, Depends(get_admin)]
