"""The FastAPI application: OpenAI-compatible routes under /v1, plus the provider's /dashboard page."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI

from service.base_models.router import router as base_models_router
from service.checkpoint_permissions.router import router as checkpoint_permissions_router
from service.config import Settings, get_settings
from service.dashboard.router import pages as dashboard_pages
from service.dashboard.router import router as dashboard_router
from service.docs import install as install_docs
from service.edge import JsonDepthGuard, reject_nul
from service.errors import install_error_handlers
from service.files import janitor
from service.files.router import router as files_router
from service.fine_tuning.event_stream import StreamHub
from service.fine_tuning.router import admin_router as admin_jobs_router
from service.fine_tuning.router import router as jobs_router
from service.inference.backends import Backends
from service.inference.router import router as inference_router
from service.inflight import InflightLimit
from service.job_evaluations.router import router as job_evaluations_router
from service.metrics.router import install as install_metrics
from service.models.router import router as models_router
from service.openapi import install as install_openapi
from service.quotas.router import router as quotas_router
from service.request_id import bind_route_ids
from service.request_id import install as install_request_id
from service.security_headers import install as install_security_headers
from service.storage import open_store
from service.unsupported import router as unsupported_router
from service.uploads.router import router as uploads_router
from service.webhooks.router import router as webhooks_router


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    # Stopped on shutdown, so tests that serve many apps in one process don't pile up janitor threads.
    with janitor.running(app.state.settings, app.state.store):
        yield
    await app.state.inference.aclose()


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    app = FastAPI(
        title="Antibody fine-tuning service",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
        lifespan=_lifespan,
        dependencies=[Depends(bind_route_ids), Depends(reject_nul)],
    )
    app.state.settings = settings
    app.state.store = open_store(settings.storage_url, endpoint_url=settings.s3_endpoint_url, region=settings.s3_region)
    app.state.stream_hub = StreamHub(settings)
    app.state.inference = Backends(settings)
    install_error_handlers(app)
    app.add_middleware(JsonDepthGuard)
    app.add_middleware(InflightLimit, limit=settings.api_max_inflight, queue_timeout_s=settings.api_queue_timeout_s)
    install_openapi(app)
    install_docs(app, settings)
    install_security_headers(app)
    install_metrics(app, settings)  # outside the in-flight bound and body guard, so their refusals count
    install_request_id(app)  # outermost: every answer, early or not, carries X-Request-ID
    for router in (
        files_router,
        uploads_router,
        jobs_router,
        checkpoint_permissions_router,
        models_router,
        inference_router,
        base_models_router,
        admin_jobs_router,
        job_evaluations_router,
        quotas_router,
        webhooks_router,
        dashboard_router,
        unsupported_router,
    ):
        app.include_router(router, prefix="/v1")
    app.include_router(dashboard_pages)

    @app.get("/healthz", include_in_schema=False)
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    return app
