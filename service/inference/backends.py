"""The API's client for inference backends that speak vLLM's OpenAI-compatible protocol.

Requests it sends (vLLM's documented API; the embedded server implements the same):

* ``POST {url}/v1/load_lora_adapter`` ``{"lora_name": <model id>, "lora_path": <inference_lora_root + prefix>}``
  before the first completion of an adapter on that backend (vLLM needs ``VLLM_ALLOW_RUNTIME_LORA_UPDATING=True``);
  a 400 saying it "has already been loaded" counts as loaded;
* ``POST {url}/v1/chat/completions`` with the validated body and ``model`` set to the LoRA name or the base name.

A backend forgets adapters (LRU, restarts): when it answers 404 for a model we believed loaded, the adapter is
loaded again and the completion retried once. Loads of one adapter on one backend are serialised by a lock, so a
burst of first calls loads it once.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from service.config import Settings
from service.errors import AppError, TooManyRequests, error_body
from service.inference.service import Target


class BackendError(AppError):
    status_code = 502
    type = "server_error"
    code = "inference_backend_error"


class BackendTimeout(AppError):
    """The backend gave up on the generation, or the API gave up waiting for it: a retry may well succeed."""

    status_code = 504
    type = "server_error"
    code = "timeout"


def _unreachable(url: str, exc: httpx.HTTPError) -> AppError:
    if isinstance(exc, httpx.TimeoutException):
        return BackendTimeout(f"inference backend {url} did not answer within the API's timeout: {exc!r}")
    return BackendError(f"inference backend {url} unreachable: {exc}")


def _retry_after(resp: httpx.Response) -> int:
    try:
        return max(1, int(resp.headers.get("retry-after", "1")))
    except ValueError:  # an HTTP date: the SDK waits a second and retries anyway
        return 1


def _from_backend(resp: httpx.Response, body: bytes) -> AppError:
    """A backend's 4xx passes through in OpenAI's shape; anything else is our 502."""
    try:
        err = json.loads(body).get("error") or {}
    except (ValueError, AttributeError):
        err = {}
    err = err if isinstance(err, dict) else {}  # a plain-text `error`: the raw body is the message
    message = err.get("message")
    if resp.status_code == 429:  # vLLM's 429 names no OpenAI type or code: ours are those of every other 429
        return TooManyRequests(message or "the inference backend is rate-limiting requests",
                               retry_after=_retry_after(resp), param=err.get("param"))
    if 400 <= resp.status_code < 500 and resp.status_code != 404:
        out = AppError(message or body.decode(errors="replace")[:500], param=err.get("param"),
                       code=err.get("code"), status_code=resp.status_code)
        if resp.headers.get("retry-after"):
            out.headers = {"retry-after": resp.headers["retry-after"]}
        return out
    if resp.status_code == 504:
        return BackendTimeout(message or "the inference backend timed out")
    if resp.status_code == 503:
        out = AppError(message or "the inference backend is busy", code="server_busy", status_code=503,
                       type="server_error")
        out.headers = {"retry-after": str(_retry_after(resp))}  # an integer, as /openapi.json documents
        return out
    detail = (message or body.decode(errors="replace"))[:300]
    return BackendError(f"inference backend answered {resp.status_code}: {detail}")


class Backends:
    """One per API process (``app.state.inference``): a pooled HTTP client and what each backend has loaded."""

    def __init__(self, settings: Settings, transport: httpx.AsyncBaseTransport | None = None):
        self.settings = settings
        timeout = httpx.Timeout(settings.inference_timeout_s, connect=5.0)
        self.client = httpx.AsyncClient(timeout=timeout, transport=transport)
        self.loaded: dict[str, set[str]] = {}
        self._locks: dict[tuple[str, str], asyncio.Lock] = {}

    async def aclose(self) -> None:
        await self.client.aclose()

    def lora_path(self, prefix: str) -> str:
        return self.settings.inference_lora_root + prefix

    async def load(self, url: str, target: Target, again: bool = False) -> None:
        assert target.adapter is not None and target.adapter_prefix is not None
        lock = self._locks.setdefault((url, target.adapter), asyncio.Lock())
        async with lock:
            if target.adapter in self.loaded.get(url, set()) and not again:
                return
            body = {"lora_name": target.adapter, "lora_path": self.lora_path(target.adapter_prefix)}
            try:
                resp = await self.client.post(f"{url}/v1/load_lora_adapter", json=body)
            except httpx.HTTPError as exc:
                raise _unreachable(url, exc) from exc
            if resp.status_code != 200 and "already been loaded" not in resp.text:
                raise BackendError(f"inference backend could not load {target.adapter}: {resp.text[:300]}")
            self.loaded.setdefault(url, set()).add(target.adapter)

    async def open(self, url: str, target: Target, body: dict[str, Any]) -> httpx.Response:
        """The backend's response, headers read and body not yet (the caller streams or reads it)."""
        for attempt in (0, 1):
            if target.adapter is not None:
                await self.load(url, target, again=attempt == 1)
            request = self.client.build_request("POST", f"{url}/v1/chat/completions", json=body)
            try:
                resp = await self.client.send(request, stream=True)
            except httpx.HTTPError as exc:
                raise _unreachable(url, exc) from exc
            if resp.status_code == 404 and target.adapter is not None and attempt == 0:
                await resp.aclose()  # the backend forgot the adapter (LRU or restart): load it again, retry once
                self.loaded.get(url, set()).discard(target.adapter)
                continue
            if resp.status_code != 200:
                raw = await resp.aread()
                await resp.aclose()
                raise _from_backend(resp, raw)
            return resp
        raise AssertionError("unreachable")

    async def relay(self, resp: httpx.Response) -> AsyncIterator[bytes]:
        """A streamed completion's SSE bytes as the backend sends them; a broken backend ends the stream with an
        error event instead of a silent cut."""
        try:
            async for chunk in resp.aiter_raw():
                yield chunk
        except httpx.HTTPError as exc:
            err = error_body(f"inference backend failed mid-stream: {exc}", "server_error", None,
                             "inference_backend_error")
            yield f"data: {json.dumps(err)}\n\n".encode()
        finally:
            await resp.aclose()
