"""Request ids and the access log: the outermost middleware of the API.

Every response carries `X-Request-ID`: the client's own when it is safe to echo (1 to 128 of `A-Z a-z 0-9 - _ . :`),
else a new `req_<32 hex>` like OpenAI's. It wraps the whole stack, outside Starlette's ServerErrorMiddleware and every
middleware that answers early (the edge's 400/413, the in-flight 503, the 500 page), so none of those answers goes
out without the id. While the request runs, the id is bound to the log context, so every line logged on its behalf
carries it; auth adds the org id and routing the path's ids (`bind_route_ids`). One access line per request, written
when the response has been sent, replaces uvicorn's.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from fastapi import Request
from starlette.applications import Starlette
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service import logs
from service.routes import UNMATCHED, RouteTemplates

HEADER = "X-Request-ID"
_SAFE_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
# Path parameters that name an object worth finding a request by; they go into the log context as they are.
_PATH_IDS = ("job_id", "file_id", "upload_id", "alignment_id", "model_id")

access_log = logging.getLogger("ftaas.access")


def request_id_from(scope: Scope) -> str:
    for name, value in scope.get("headers", ()):
        if name == b"x-request-id":
            candidate = value.decode("latin-1")
            if _SAFE_ID.fullmatch(candidate):
                return candidate
            break
    return f"req_{uuid.uuid4().hex}"


class RequestContext:
    def __init__(self, app: ASGIApp) -> None:
        self.app, self.template = app, RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        started = time.perf_counter()
        status = 500  # what the client gets if the app raises before starting a response

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                MutableHeaders(scope=message)[HEADER] = request_id
            await send(message)

        with logs.log_context(request_id=request_id):
            try:
                await self.app(scope, receive, send_with_id)
            finally:
                route = self.template(scope)
                _log_access(scope, None if route == UNMATCHED else route, status, time.perf_counter() - started)


def _log_access(scope: Scope, route: str | None, status: int, seconds: float) -> None:
    fields = {
        "method": scope["method"],
        "route": route,
        "path": scope["path"],
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
    }
    level = logging.WARNING if status >= 500 else logging.INFO
    access_log.log(level, "%s %s %d %.1f ms", scope["method"], route or scope["path"], status, seconds * 1000,
                   extra=fields)


async def bind_route_ids(request: Request) -> None:
    """App-wide dependency (runs once routed): the path's object ids join the request's log context."""
    logs.bind(**{name: request.path_params[name] for name in _PATH_IDS if name in request.path_params})


def install(app: Starlette) -> None:
    """Outermost: call after every other middleware is installed (security_headers wraps the stack the same way)."""
    build = app.build_middleware_stack
    app.build_middleware_stack = lambda: RequestContext(build())  # type: ignore[method-assign]
