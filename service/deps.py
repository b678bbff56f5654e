"""Request dependencies with readable aliases: SessionDep, CurrentOrg, AdminOrg, SettingsDep, StoreDep."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, Header, Request
from sqlalchemy.orm import Session

from service.auth.service import Principal, authenticate, require_admin
from service.config import Settings
from service.db import session_scope
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


def get_principal(session: SessionDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    return authenticate(session, authorization)


CurrentOrg = Annotated[Principal, Depends(get_principal)]


def get_admin(principal: CurrentOrg) -> Principal:
    return require_admin(principal)


AdminOrg = Annotated[Principal, Depends(get_admin)]
