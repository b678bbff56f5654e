"""Cross-site request checks for the dashboard's POSTs: the Origin (or Referer) must be this server, and the form
must carry a token that another site can't read.

SameSite=Strict cookies already keep a cross-site POST from carrying the session, but not every browser honours
it, and the login form has no session yet (login CSRF: a victim logged in to the attacker's account). So:
- after login, the token is an HMAC of the session token (synchronizer token bound to the session, nothing stored);
- before login, a random nonce in an HttpOnly cookie and its HMAC in the form (signed double submit).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from urllib.parse import urlsplit

from fastapi import Request

from service.config import Settings

FORM_COOKIE = "ftaas_dashboard_form"
FORM_SECONDS = 3600
FIELD = "csrf_token"
_PORTS = {"http": 80, "https": 443}


def _origin(url: str) -> str | None:
    """scheme://host[:port] with the default port dropped; None for anything that is not an http(s) URL."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError:
        return None
    if parts.scheme not in _PORTS or not parts.hostname:
        return None
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"{parts.scheme}://{host}" + ("" if port in (None, _PORTS[parts.scheme]) else f":{port}")


def same_origin(request: Request, settings: Settings) -> bool:
    """Whether the browser says this POST comes from one of our own pages.

    Browsers send Origin on every POST; Referer is the fallback only where Origin is absent. `Origin: null`
    (sandboxed frames, a no-referrer policy) is refused: it could be any site. FTAAS_PUBLIC_URL is allowed as well
    as the request's own host, because behind a proxy the two differ.
    """
    header = request.headers.get("origin")
    if header is None:
        header = request.headers.get("referer")
    sender = _origin(header) if header else None
    return sender is not None and sender in {_origin(str(request.base_url)), _origin(settings.public_url)}


def _mac(settings: Settings, purpose: str, value: str) -> str:
    key = hashlib.sha256(f"ftaas-dashboard-{purpose}:".encode() + settings.secret_key.encode()).digest()
    return hmac.new(key, value.encode(), hashlib.sha256).hexdigest()


def _equal(expected: str, given: str | None) -> bool:
    return given is not None and hmac.compare_digest(expected.encode(), given.encode())


def session_token(settings: Settings, session_cookie: str) -> str:
    return _mac(settings, "csrf", session_cookie)


def valid_session_token(settings: Settings, session_cookie: str, given: str | None) -> bool:
    return _equal(session_token(settings, session_cookie), given)


def new_form_nonce() -> str:
    return secrets.token_urlsafe(32)


def form_token(settings: Settings, nonce: str) -> str:
    return _mac(settings, "login-form", nonce)


def valid_form_token(settings: Settings, nonce: str | None, given: str | None) -> bool:
    return nonce is not None and _equal(form_token(settings, nonce), given)
