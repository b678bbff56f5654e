"""Swagger UI at /docs, only for a developer who asks for it (FTAAS_ENV=dev and FTAAS_DOCS=true).

FastAPI's page loads Swagger UI's JS from a CDN without subresource integrity, on the same origin as the dashboard,
and provider machines have no internet anyway. No well-kept PyPI package ships current assets (swagger-ui-bundle
1.1.0 vendors Swagger UI 4.15, which can't render OpenAPI 3.1), so elsewhere /docs is simply off; /openapi.json
stays, for schemathesis and the SDK generators.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse

from service.config import Settings

# Swagger UI's bootstrap is one inline script; the page fetches only /openapi.json.
DOCS_CSP = (
    "default-src 'none'; script-src https://cdn.jsdelivr.net 'unsafe-inline'; style-src https://cdn.jsdelivr.net; "
    "img-src https://fastapi.tiangolo.com data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def install(app: FastAPI, settings: Settings) -> None:
    if settings.env != "dev" or not settings.docs or not app.openapi_url:
        return
    openapi_url = app.openapi_url

    @app.get("/docs", include_in_schema=False)
    def swagger_ui() -> HTMLResponse:
        page = get_swagger_ui_html(openapi_url=openapi_url, title=f"{app.title} - Swagger UI")
        page.headers["Content-Security-Policy"] = DOCS_CSP
        return page
