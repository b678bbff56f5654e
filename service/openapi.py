"""The OpenAPI document as the API really behaves: OpenAI's error shape for every 4xx, never FastAPI's 422.

FastAPI documents a 422 `{"detail": …}` on every operation, but `service.errors` turns validation errors into
400s in OpenAI's shape, and it knows nothing of the 401/403/404/413/429 the services raise, nor of the 503 every
route can answer (the database is down, or the API is at its in-flight bound). schemathesis checks
responses against this document (`tests/service/test_openapi_contract.py`), so it has to be right.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "additionalProperties": False,
    "properties": {
        "error": {
            "type": "object",
            "required": ["message", "type", "param", "code"],
            "additionalProperties": False,
            "properties": {
                "message": {"type": "string"},
                "type": {"type": "string"},
                "param": {"type": ["string", "null"]},
                "code": {"type": ["string", "null"]},
            },
        }
    },
}

RETRY_AFTER = {"description": "Seconds to wait before retrying", "required": True, "schema": {"type": "integer"}}
QUOTA = {  # service.quotas.service.QUOTA_HEADER: the type and code are OpenAI's, the same for every 429
    "description": "Which org quota refused the request (absent when a concurrency bound did)",
    "required": False,
    "schema": {"type": "string", "enum": ["requests_per_minute", "queued_jobs", "upload_bytes_per_day"]},
}

_REASONS = {
    400: "Invalid request (OpenAI's invalid_request_error), including every validation error",
    401: "Missing, malformed or unknown API key",
    403: "The key is not an admin key",
    404: "No such object in the caller's org (another org's object looks exactly like a missing one)",
    413: "Body larger than the server's limit (uploads: FTAAS_MAX_UPLOAD_BYTES; JSON bodies: 4 MiB)",
    429: "An org quota (requests per minute, queued jobs, upload bytes per day) or a bound on concurrent requests of "
    "this kind; `retry-after` says when to retry",
    502: "The inference backend failed or sent a malformed answer",
    503: "Temporarily unavailable: the database is unreachable (code service_unavailable), the API is at its bound "
    "on requests in flight (server_busy), or, for completions, the inference backend is saturated; `retry-after` "
    "says when to retry, and the openai SDK retries it",
    504: "The inference backend timed out (the generation, or the API's wait for it)",
}

# Responses beyond the defaults, by (method, exact path).
_EXTRA: list[tuple[str, str, list[int]]] = [
    ("post", "/v1/files", [413]),
    ("post", "/v1/uploads/{upload_id}/parts", [413]),  # a part over 64 MB, or past the 8 GB in all
    ("get", "/v1/fine_tuning/jobs/{job_id}/events", [429]),
    ("delete", "/v1/models/{model_id}", [403]),  # a provider base model
    ("post", "/v1/chat/completions", [404, 502, 504]),  # unknown/deleted `model`; backend failed/timed out
]


def _error_codes(method: str, path: str, operation: dict[str, Any]) -> list[int]:
    codes = [400]
    if operation.get("security") is not None:
        codes += [401, 429]  # every authenticated request counts against its org's requests-per-minute quota
    if path.startswith("/v1/admin/"):
        codes.append(403)
    if "{" in path:
        codes.append(404)
    if "requestBody" in operation:
        codes.append(413)  # service/edge.py refuses a JSON body over 4 MiB (or nested too deep) before parsing
    codes += [code for m, p, extra in _EXTRA if m == method and path == p for code in extra]
    # service.inflight bounds every request, and every documented route reads the database (auth at least).
    return [*codes, 503]


def document_errors(schema: dict[str, Any]) -> dict[str, Any]:
    """Replace each operation's 422 with the 4xx responses it really sends, all with the `Error` schema."""
    schema.setdefault("components", {}).setdefault("schemas", {})["Error"] = ERROR_SCHEMA
    ref = {"$ref": "#/components/schemas/Error"}
    for path, operations in schema.get("paths", {}).items():
        for method, operation in operations.items():
            responses = operation.setdefault("responses", {})
            responses.pop("422", None)
            for code in _error_codes(method, path, operation):
                response = {"description": _REASONS[code], "content": {"application/json": {"schema": ref}}}
                if code == 429:
                    response["headers"] = {"retry-after": RETRY_AFTER, "x-ftaas-quota": QUOTA}
                elif code == 503:
                    response["headers"] = {"retry-after": RETRY_AFTER}
                responses.setdefault(str(code), response)
    schemas = schema["components"]["schemas"]
    for unused in ("HTTPValidationError", "ValidationError"):
        schemas.pop(unused, None)
    return schema


def install(app: FastAPI) -> None:
    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = document_errors(
                get_openapi(title=app.title, version=app.version, routes=app.routes, description=app.description)
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
