"""OpenAI-style object ids (`file-…`, `ftjob-…`, `ftevent-…`, `ftckpt_…`) and API keys."""

from __future__ import annotations

import hashlib
import secrets
import string
import time

_ALPHABET = string.ascii_letters + string.digits


def new_id(prefix: str, length: int = 24) -> str:
    return prefix + "".join(secrets.choice(_ALPHABET) for _ in range(length))


def new_api_key() -> str:
    return "sk-ftaas-" + secrets.token_urlsafe(32)


def hash_api_key(key: str) -> str:
    # Keys are 256-bit random, so a fast unsalted hash is enough (no dictionary to attack).
    return hashlib.sha256(key.encode()).hexdigest()


def now() -> int:
    return int(time.time())
