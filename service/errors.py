"""One error hierarchy, rendered by one handler as OpenAI's `{"error": {...}}` shape."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

DB_RETRY_AFTER_S = 5  # a restarting or failing-over database is usually back within seconds


class AppError(Exception):
    status_code = 400
    type = "invalid_request_error"
    code: str | None = None
    headers: dict[str, str] | None = None  # extra response headers, e.g. retry-after on a 429

    def __init__(
        self,
        message: str,
        *,
        param: str | None = None,
        code: str | None = None,
        status_code: int | None = None,
        type: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.param = param
        if code is not None:
            self.code = code
        if status_code is not None:
            self.status_code = status_code
        if type is not None:
            self.type = type


class InvalidRequest(AppError):
    pass


class NotFound(AppError):
    status_code = 404
    code = "not_found"


class Unauthorized(AppError):
    status_code = 401
    code = "invalid_api_key"


class Forbidden(AppError):
    status_code = 403
    type = "permission_error"
    code = "insufficient_permissions"


class PayloadTooLarge(AppError):
    status_code = 413
    code = "file_too_large"


class TooManyRequests(AppError):
    """429 in OpenAI's rate-limit shape; `retry_after` (seconds) becomes the header the SDKs back off by."""

    status_code = 429
    type = "requests"
    code = "rate_limit_exceeded"

    def __init__(self, message: str, *, retry_after: int, param: str | None = None) -> None:
        super().__init__(message, param=param)
        self.headers = {"retry-after": str(retry_after)}


def error_body(message: str, type: str, param: str | None = None, code: str | None = None) -> dict:
    return {"error": {"message": message, "type": type, "param": param, "code": code}}


def _json(status: int, body: dict, headers: Mapping[str, str] | None = None) -> JSONResponse:
    return JSONResponse(status_code=status, content=body, headers=headers)


def error_response(exc: AppError, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """`exc` as its response; `headers` add to its own (a route that returns an error instead of raising it)."""
    body = error_body(exc.message, exc.type, exc.param, exc.code)
    return _json(exc.status_code, body, {**(exc.headers or {}), **(headers or {})})


def _field_path(loc: tuple) -> str | None:
    # Only the leading source is dropped: a body field may itself be called `path` (RegisterBaseModel.path).
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    return ".".join(str(p) for p in loc) or None


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(AppError)
    async def _app_error(_: Request, exc: AppError) -> JSONResponse:
        return error_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _validation(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = exc.errors()
        first = errors[0] if errors else {"loc": (), "msg": "invalid request"}
        param = _field_path(tuple(first.get("loc", ())))
        msgs = "; ".join(
            f"{_field_path(tuple(e.get('loc', ()))) or 'body'}: {e.get('msg')}" for e in errors[:10]
        )
        return _json(
            400, error_body(f"Invalid request: {msgs}", "invalid_request_error", param, "invalid_value")
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code)
        message = exc.detail if isinstance(exc.detail, str) else "HTTP error"
        if exc.status_code == 404:
            message = "Unknown request URL. Please check the URL and method."
        return _json(exc.status_code, error_body(message, "invalid_request_error", None, code), exc.headers)

    @app.exception_handler(DBAPIError)
    async def _database(request: Request, exc: DBAPIError) -> JSONResponse:
        # The database is unreachable (down, restarting, refusing connections): a retryable 503, never a 500.
        # The pool pre-pings (service/db.py), so the first request after it is back gets a fresh connection
        if isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated:
            log.warning("database unavailable: %s", exc.orig or exc)
            body = error_body("The database is temporarily unavailable; retry shortly.", "server_error", None,
                              "service_unavailable")  # fmt: skip
            return _json(503, body, {"retry-after": str(DB_RETRY_AFTER_S)})
        return await _unexpected(request, exc)

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=exc)
        # Close the connection: whatever broke may have left the request half-read (e.g. a body not consumed).
        return _json(
            500,
            error_body("The server had an error processing your request.", "server_error"),
            {"Connection": "close"},
        )
