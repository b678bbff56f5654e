"""Standard Webhooks secrets and signatures (what `openai`'s `client.webhooks.unwrap()` verifies)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets


def new_secret() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """`v1,<base64 HMAC-SHA256>` of `"{msg_id}.{timestamp}.{body}"`, keyed by the base64 after `whsec_`."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
