"""Browser login for the dashboard: an admin API key is exchanged for a signed, expiring session cookie.

The cookie never holds the key. It holds the key's hash (the DB's lookup key; the key is 256-bit random, so the
hash reveals nothing), an expiry and an HMAC under FTAAS_SECRET_KEY. Every request looks the hash up again, so a
revoked key or a key that lost admin ends its sessions at once.
"""

from __future__ import annotations

import hashlib
import hmac
import time

from sqlalchemy.orm import Session

from service.auth import repository as auth
from service.auth.service import Principal
from service.config import Settings
from service.ids import hash_api_key

COOKIE = "ftaas_dashboard"
SESSION_SECONDS = 12 * 3600


class LoginFailed(Exception):
    """Shown on the login form (the message is safe to display)."""


def _signature(settings: Settings, payload: str) -> str:
    key = hashlib.sha256(b"ftaas-dashboard-session:" + settings.secret_key.encode()).digest()
    return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()


def _admin(session: Session, key_hash: str) -> Principal | None:
    found = auth.get_key(session, key_hash)
    if found is None or not found[0].is_admin:
        return None
    return Principal(org_id=found[1].id, org_name=found[1].name, is_admin=True)


def login(session: Session, settings: Settings, api_key: str, *, at: float | None = None) -> str:
    """The cookie value for an admin key; raises LoginFailed for an unknown, revoked or non-admin key."""
    key_hash = hash_api_key(api_key.strip())
    found = auth.get_key(session, key_hash) if api_key.strip() else None
    if found is None:
        raise LoginFailed("Unknown or revoked API key.")
    if not found[0].is_admin:
        raise LoginFailed(
            f"That key belongs to org '{found[1].name}' but is not an admin key. "
            "Create one with: ftaas keys create --org NAME --admin"
        )
    payload = f"{key_hash}.{int((time.time() if at is None else at) + SESSION_SECONDS)}"
    return f"{payload}.{_signature(settings, payload)}"


def admin_for_cookie(session: Session, settings: Settings, token: str, *, at: float | None = None) -> Principal | None:
    """The admin behind a session cookie; None if it is forged, expired, or its key was revoked or demoted."""
    payload, _, signature = token.rpartition(".")
    if not hmac.compare_digest(signature.encode(), _signature(settings, payload).encode()):
        return None
    key_hash, _, expires = payload.partition(".")
    if not expires.isdigit() or int(expires) < (time.time() if at is None else at):
        return None
    return _admin(session, key_hash)
