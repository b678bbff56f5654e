"""Hostile input stopped before it reaches a service: NUL bytes in URLs and headers, JSON nested too deeply.

PostgreSQL cannot store or compare text holding NUL ("text fields cannot contain NUL"), and json.loads, pydantic and
orjson each hit a recursion limit on deep nesting; both used to surface as 500s. They are 400s in OpenAI's error
shape instead: `JsonDepthGuard` (ASGI middleware) checks nesting before FastAPI parses a body, `reject_nul` (an
app-wide dependency) checks path, query and headers once routed, and request bodies use `SafeStr` and `BoundedJson`
so that the error names the field.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from fastapi import Request
from pydantic import AfterValidator
from starlette.responses import JSONResponse
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import InvalidRequest, error_body

MAX_JSON_DEPTH = 64
MAX_JSON_NODES = 10_000
# FastAPI reads a JSON body whole; this bounds what that costs. Job bodies are a few kB; file contents go through
# multipart uploads, which are streamed and never buffered here.
MAX_JSON_BODY = 4 * 1024 * 1024
INT64 = (-(2**63), 2**63 - 1)  # what orjson (the idempotency hash) and a BIGINT column can hold

# One token per JSON string (escapes included, possessive so a long string cannot backtrack) or per bracket.
_JSON_TOKENS = re.compile(rb'"(?:[^"\\]++|\\.)*+"|[\[\]{}]', re.DOTALL)
_OPENERS = frozenset(b"[{")
_CLOSERS = frozenset(b"]}")


def _no_nul(value: str) -> str:
    if "\x00" in value:
        raise ValueError("must not contain NUL (\\u0000) characters")
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]


def _bounded_json(value: Any) -> Any:
    """Free-form JSON we store or hash: no NUL in strings or keys, 64-bit integers, bounded depth and size."""
    stack = [(value, 1)]
    nodes = 0
    while stack:
        item, depth = stack.pop()
        nodes += 1
        if depth > MAX_JSON_DEPTH or nodes > MAX_JSON_NODES:
            raise ValueError(f"is too large (at most {MAX_JSON_DEPTH} levels and {MAX_JSON_NODES} values)")
        if isinstance(item, dict):
            for key, child in item.items():
                _no_nul(key)
                stack.append((child, depth + 1))
        elif isinstance(item, list):
            stack.extend((child, depth + 1) for child in item)
        elif isinstance(item, str):
            _no_nul(item)
        elif isinstance(item, int) and not isinstance(item, bool) and not INT64[0] <= item <= INT64[1]:
            raise ValueError("holds an integer outside the 64-bit range")
    return value


BoundedJson = Annotated[dict[str, Any], AfterValidator(_bounded_json)]


def json_too_deep(body: bytes, limit: int = MAX_JSON_DEPTH) -> bool:
    """Whether `body` nests arrays/objects deeper than `limit`, found without recursion (brackets inside strings
    don't count). Invalid JSON may be misjudged; it is rejected with a 400 either way."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False
    depth = 0
    for match in _JSON_TOKENS.finditer(body):
        first = body[match.start()]
        if first in _OPENERS:
            depth += 1
            if depth > limit:
                return True
        elif first in _CLOSERS:
            depth -= 1
    return False


def reject_nul(request: Request) -> None:
    """App-wide dependency: a NUL in a path parameter, a query parameter or a header is a 400 naming it. It runs
    after routing, so that the path parameter can be named, and before the route's own dependencies."""
    for name, value in request.path_params.items():
        if "\x00" in str(value):
            raise InvalidRequest("The URL path must not contain NUL (%00) characters.", param=name)
    for name, value in request.query_params.multi_items():
        if "\x00" in name or "\x00" in value:
            param = name.replace("\x00", "")
            raise InvalidRequest("Query parameters must not contain NUL (%00) characters.", param=param)
    # uvicorn's h11 parser already refuses these; this covers servers that pass them on.
    for name, value in request.headers.items():
        if "\x00" in value:
            raise InvalidRequest("Header values must not contain NUL characters.", param=name)


def _carries_json(scope: Scope) -> bool:
    """FastAPI json-decodes a body sent as application/json, as `+json`, or with no content type at all."""
    content_type = dict(scope.get("headers", ())).get(b"content-type", b"").split(b";")[0].strip().lower()
    return not content_type or content_type == b"application/json" or content_type.endswith(b"+json")


async def _read_body(receive: Receive) -> tuple[bytes, Message | None]:
    """The whole body (or its first MAX_JSON_BODY + 1 bytes), or the disconnect message that cut it short."""
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return b"".join(chunks), message
        chunks.append(message.get("body", b""))
        size += len(chunks[-1])
        if not message.get("more_body", False) or size > MAX_JSON_BODY:
            return b"".join(chunks), None


def _refusal(body: bytes) -> JSONResponse | None:
    if len(body) > MAX_JSON_BODY:
        message = f"The request body is larger than {MAX_JSON_BODY // 2**20} MiB (only multipart uploads may be)."
        error = error_body(message, "invalid_request_error", None, "request_too_large")
        # The rest of the body is left unread, so the connection cannot carry another request.
        return JSONResponse(error, 413, headers={"Connection": "close"})
    if json_too_deep(body):
        message = f"The JSON body nests deeper than {MAX_JSON_DEPTH} levels."
        return JSONResponse(error_body(message, "invalid_request_error", None, "invalid_value"), 400)
    return None


def _replay(body: bytes, cut: Message | None, receive: Receive) -> Receive:
    pending = [{"type": "http.request", "body": body, "more_body": False} if cut is None else cut]

    async def replayed() -> Message:
        return pending.pop() if pending else await receive()

    return replayed


class JsonDepthGuard:
    """Pure ASGI middleware (responses pass through untouched); it buffers only JSON request bodies, which FastAPI
    reads whole anyway, and refuses those over MAX_JSON_BODY."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] in ("POST", "PUT", "PATCH") and _carries_json(scope):
            body, cut = await _read_body(receive)
            receive = _replay(body, cut, receive)
            refusal = _refusal(body) if cut is None else None
            if refusal is not None:
                await refusal(scope, receive, send)
                return
        await self.app(scope, receive, send)
