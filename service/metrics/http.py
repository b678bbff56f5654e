"""Requests by route template, method and status, and their latency, counted by a pure ASGI middleware.

The route label is the template FastAPI matched (``/v1/fine_tuning/jobs/{fine_tuning_job_id}``), never the raw path:
ids in paths would make a new series per object. A request answered before routing (a 503 from the in-flight
bound, a 413 from the body guard) is matched against the routes here; one no route matches is ``unmatched``.
Latency runs until the last body byte is handed to the server, so a long event stream counts as long.

With ``ftaas serve --workers N`` the counts live in prometheus_client's multiprocess files
(``PROMETHEUS_MULTIPROC_DIR``, which ``ftaas serve`` sets and empties), so any process's /metrics shows them all.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.multiprocess import MultiProcessCollector
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.routes import RouteTemplates

METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)


def multiprocess_dir() -> str | None:
    return os.environ.get("PROMETHEUS_MULTIPROC_DIR") or None


class RequestMetrics:
    """The API's own counters, in a registry of their own per app (tests serve several apps in one process)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.requests = Counter(
            "ftaas_http_requests",
            "HTTP requests by route template, method and status",
            ["route", "method", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "ftaas_http_request_duration_seconds",
            "From the request's arrival to its last response byte, by route template and method",
            ["route", "method"],
            buckets=LATENCY_BUCKETS,
            registry=registry,
        )


def exposed_registry(own: CollectorRegistry) -> CollectorRegistry:
    """What /metrics shows: this process's registry, or with several server processes, all of theirs combined."""
    folder = multiprocess_dir()
    if folder is None:
        return own
    combined = CollectorRegistry()
    MultiProcessCollector(combined, path=folder)
    return combined


class MetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: RequestMetrics) -> None:
        self.app, self.metrics, self.template = app, metrics, RouteTemplates()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        began = time.perf_counter()
        status = 500  # what the server answers when the app raises before starting a response

        async def record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, record)
        finally:
            method = scope["method"] if scope["method"] in METHODS else "other"
            route = self.template(scope)
            self.metrics.requests.labels(route, method, str(status)).inc()
            self.metrics.latency.labels(route, method).observe(time.perf_counter() - began)


def prepare_multiprocess(default_dir: Path) -> None:
    """Before the server processes start: point them at one empty folder of counter files (files left by an
    earlier run would add its counts to this one's)."""
    folder = Path(os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(default_dir)))
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
