"""The FastAPI application: OpenAI-compatible routes under /v1, plus the provider's /dashboard page."""

from __future__ import annotations

from fastapi import FastAPI

from service.base_models.router import router as base_models_router
from service.config import Settings, get_settings
from service.dashboard.router import pages as dashboard_pages
from service.dashboard.router import router as dashboard_router
from service.errors import install_error_handlers
from service.files.router import router as files_router
from service.fine_tuning.router import admin_router as admin_jobs_router
from service.fine_tuning.router import router as jobs_router
from service.models.router import router as models_router
from service.storage import open_store
from service.webhooks.router import router as webhooks_router


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(title="Antibody fine-tuning service", version="0.1.0", docs_url="/docs", redoc_url=None)
    app.state.settings = settings
    app.state.store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    install_error_handlers(app)
    for router in (
        files_router,
        jobs_router,
        models_router,
        base_models_router,
        admin_jobs_router,
        webhooks_router,
        dashboard_router,
    ):
        app.include_router(router, prefix="/v1")
    app.include_router(dashboard_pages)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
