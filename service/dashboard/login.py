"""Browser login for the dashboard: an admin API key is exchanged for a server-side session.

The cookie holds a 256-bit random token and `dashboard_sessions` only its SHA-256, so the cookie can't be forged
from anything in the DB (a key hash, a session row) nor from FTAAS_SECRET_KEY. Every request looks the session up
together with its key, so logout, a revoked key, or a key that lost admin ends the session at once.
"""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.orm import Session

from service.auth import repository as auth
from service.auth.service import Principal
from service.config import PLACEHOLDER_SECRETS, Settings
from service.dashboard import repository
from service.ids import hash_api_key, now

COOKIE = "ftaas_dashboard"
SESSION_SECONDS = 12 * 3600


class LoginFailed(Exception):
    """Shown on the login form (the message is safe to display)."""


def _token_hash(token: str) -> str:
    return hashlib.sha256(b"ftaas-dashboard-session:" + token.encode()).hexdigest()


def login(session: Session, api_key: str, *, at: int | None = None) -> str:
    """A new session's cookie value for an admin key; raises LoginFailed for an unknown, revoked or non-admin key."""
    found = auth.get_key(session, hash_api_key(api_key.strip())) if api_key.strip() else None
    if found is None:
        raise LoginFailed("Unknown or revoked API key.")
    key, org = found
    if not key.is_admin:
        raise LoginFailed(
            f"That key belongs to org '{org.name}' but is not an admin key. "
            "Create one with: ftaas keys create --org NAME --admin"
        )
    at = now() if at is None else at
    repository.delete_expired_sessions(session, at)
    token = secrets.token_urlsafe(32)
    repository.add_session(session, _token_hash(token), key.key_hash, at, at + SESSION_SECONDS)
    return token


def admin_for_cookie(session: Session, token: str, *, at: int | None = None) -> Principal | None:
    """The admin behind a session cookie; None if it is unknown, logged out, expired, or its key was revoked or
    demoted."""
    org = repository.session_admin(session, _token_hash(token), now() if at is None else at)
    return None if org is None else Principal(org_id=org.id, org_name=org.name, is_admin=True)


def logout(session: Session, token: str, *, at: int | None = None) -> None:
    """Revoke the session, so the same cookie replayed later is refused."""
    repository.revoke_session(session, _token_hash(token), now() if at is None else at)


def refuses_placeholder_secret(settings: Settings) -> bool:
    """A placeholder secret gets no dashboard sessions unless FTAAS_ENV=dev was set on purpose (`ftaas up` sets it):
    a server started with no settings at all (env defaults to dev) must not hand out admin sessions."""
    return settings.secret_key.lower() in PLACEHOLDER_SECRETS and "env" not in settings.model_fields_set


def dev_secret_notice(settings: Settings) -> str | None:
    """A warning for the login page: sessions don't depend on the secret, but signed links and webhooks do.

    Outside FTAAS_ENV=dev a placeholder secret never gets this far: Settings refuses it, so the process can't start.
    """
    if settings.secret_key.lower() in PLACEHOLDER_SECRETS:
        return (
            f"Dev mode (FTAAS_ENV={settings.env}) with a placeholder FTAAS_SECRET_KEY: do not expose this server. "
            "Set FTAAS_ENV=prod and a real FTAAS_SECRET_KEY in production."
        )
    return None
