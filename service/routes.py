"""The route template a request matched (``/v1/fine_tuning/jobs/{fine_tuning_job_id}``), for metrics and logs.

Labels and log fields use the template, never the raw path: ids in paths would make a new series per object.
"""

from __future__ import annotations

import re

from fastapi.routing import iter_route_contexts
from starlette.routing import compile_path
from starlette.types import ASGIApp, Scope

UNMATCHED = "unmatched"


class RouteTemplates:
    """Route template of a request. FastAPI puts the matched route in the scope, but an included router's route
    knows only its own path (``/files``), so the full one (``/v1/files``) is looked up from the app's routes."""

    def __init__(self) -> None:
        self._by_route: dict[int, str] | None = None
        self._patterns: list[tuple[re.Pattern[str], str]] = []

    def _learn(self, app: ASGIApp) -> dict[int, str]:
        contexts = [c for c in iter_route_contexts(getattr(app, "routes", ())) if c.path_format]
        self._patterns = [(compile_path(c.path_format)[0], c.path_format) for c in contexts]
        return {id(c.original_route): c.path_format for c in contexts}

    def __call__(self, scope: Scope) -> str:
        if self._by_route is None:  # on the first request: by then every router is included
            self._by_route = self._learn(scope.get("app"))
        route = scope.get("route")
        if route is not None and id(route) in self._by_route:
            return self._by_route[id(route)]
        path = scope["path"]  # answered before routing, or by a route not in the app's list
        return next((template for regex, template in self._patterns if regex.match(path)), UNMATCHED)
