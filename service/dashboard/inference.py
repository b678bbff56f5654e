"""The inference side of the dashboard: each configured backend's served models, loaded adapters and load.

Every backend speaks vLLM's protocol, so ``GET /v1/models`` lists what it serves (LoRA adapters carry a
``parent``); the embedded server also answers ``GET /stats`` (queue depth, request and token counters, latency
percentiles over its last 1000 completions), which vLLM does not (its figures are on ``/metrics``). A backend
that does not answer within ``inference_status_timeout_s`` (1 s) is shown as unreachable rather than holding the page.
"""

from __future__ import annotations

from typing import Any

import httpx

from service.config import Settings
from service.dashboard.schemas import InferenceBackend


def _get(client: httpx.Client, url: str) -> dict[str, Any] | None:
    resp = client.get(url)
    return resp.json() if resp.status_code == 200 else None


def backends(settings: Settings) -> list[InferenceBackend]:
    by_url: dict[str, list[str]] = {}
    for base, url in sorted(settings.inference_backends.items()):
        by_url.setdefault(url.rstrip("/"), []).append(base)
    out = []
    with httpx.Client(timeout=settings.inference_status_timeout_s) as client:
        for url, bases in by_url.items():
            try:
                models = (_get(client, f"{url}/v1/models") or {}).get("data", [])
                stats = _get(client, f"{url}/stats") or {}
            except (httpx.HTTPError, ValueError) as exc:
                out.append(InferenceBackend(url=url, bases=bases, reachable=False, error=f"{type(exc).__name__}"))
                continue
            latency = stats.get("latency_s") or {}
            out.append(InferenceBackend(
                url=url, bases=bases, reachable=True,
                served=[m["id"] for m in models if not m.get("parent")],
                adapters=[m["id"] for m in models if m.get("parent")],
                adapter_capacity=stats.get("capacity"), queue_depth=stats.get("queue_depth"),
                requests=stats.get("requests"), completion_tokens=stats.get("completion_tokens"),
                latency_p50_s=latency.get("p50"), latency_p99_s=latency.get("p99"),
            ))
    return out
