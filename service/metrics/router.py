"""``GET /metrics``: Prometheus's text format, outside /v1 and the OpenAPI document (it is not OpenAI's API).

Who may read it is ``metrics_access`` (service/config.py): open by default, an admin key, or no route at all.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Response
from prometheus_client import CollectorRegistry, disable_created_metrics, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_PLAIN_0_0_4

from service.config import Settings
from service.deps import get_admin
from service.metrics.collector import DatabaseCollector
from service.metrics.http import MetricsMiddleware, RequestMetrics, exposed_registry


def install(app: FastAPI, settings: Settings) -> None:
    """Count every request (add this after the middlewares whose early answers should be counted too) and,
    unless metrics are off, serve them."""
    disable_created_metrics()  # process-wide; *_created series only double what a scrape sends
    own = CollectorRegistry()
    app.add_middleware(MetricsMiddleware, metrics=RequestMetrics(own))
    if settings.metrics_access == "off":
        return
    registry = exposed_registry(own)
    registry.register(DatabaseCollector(settings))

    # Sync on purpose: the DB read runs in the threadpool, off the event loop.
    def metrics() -> Response:
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_PLAIN_0_0_4)

    guard = [Depends(get_admin)] if settings.metrics_access == "admin" else []
    app.add_api_route("/metrics", metrics, methods=["GET"], include_in_schema=False, dependencies=guard)
