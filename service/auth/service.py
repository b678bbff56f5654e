"""API keys: creation and bearer authentication. Keys are stored only as hashes."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.auth import repository
from service.errors import Forbidden, Unauthorized
from service.ids import hash_api_key, new_api_key


@dataclass(frozen=True)
class Principal:
    org_id: str
    org_name: str
    is_admin: bool


def create_key(session: Session, org_name: str, *, admin: bool = False) -> str:
    """Create (or reuse) the org and return a new plaintext key; only its hash is stored."""
    org = repository.get_or_create_org(session, org_name)
    key = new_api_key()
    repository.add_key(session, org, hash_api_key(key), key[:12], admin)
    return key


def authenticate(session: Session, authorization: str | None) -> Principal:
    if not authorization:
        raise Unauthorized(
            "You didn't provide an API key. Provide it in the Authorization header (Authorization: Bearer YOUR_KEY)."
        )
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Malformed Authorization header: expected 'Bearer YOUR_KEY'.")
    found = repository.get_key(session, hash_api_key(token.strip()))
    if found is None:
        raise Unauthorized(f"Incorrect API key provided: {token.strip()[:12]}…")
    key, org = found
    return Principal(org_id=org.id, org_name=org.name, is_admin=key.is_admin)


def require_admin(principal: Principal) -> Principal:
    if not principal.is_admin:
        raise Forbidden("This endpoint needs an admin API key (ftaas keys create --org NAME --admin).")
    return principal
