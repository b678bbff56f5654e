"""The embedded inference server: the subset of vLLM's OpenAI-compatible protocol that the API routes through.

* ``POST /v1/chat/completions`` (JSON, or SSE chunks ending with ``data: [DONE]``), ``GET /v1/models``;
* ``POST /v1/load_lora_adapter`` ``{"lora_name", "lora_path"}`` and ``POST /v1/unload_lora_adapter``
  ``{"lora_name"}``, answering plain text as vLLM does (with ``VLLM_ALLOW_RUNTIME_LORA_UPDATING`` set);
* ``GET /health``, and ``GET /stats`` (ours: queue depth, loaded adapters, counters, latency percentiles).

The API validates every request first (``service.inference.schemas``), so this server checks only what it must
to stay correct on its own: the model name, the context length and the numeric ranges. ``lora_path`` goes
through ``resolve_path`` (the embedded wiring maps ``store://…`` to a downloaded folder).
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from worker.inference.adapters import AdapterError
from worker.inference.decode import BASE_ADAPTER, Row
from worker.inference.engine import Engine, Result, Saturated, UnknownAdapter
from worker.inference.engine import Request as EngineRequest


class Message(BaseModel):
    role: Literal["system", "user", "assistant", "developer"]
    content: str | None = None


class StreamOptions(BaseModel):
    include_usage: bool = False


class ChatRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str
    messages: list[Message] = Field(min_length=1)
    max_tokens: int | None = Field(default=None, ge=1)
    max_completion_tokens: int | None = Field(default=None, ge=1)
    temperature: float = Field(default=1.0, ge=0.0, le=2.0)
    top_p: float = Field(default=1.0, gt=0.0, le=1.0)
    n: int = Field(default=1, ge=1, le=16)
    stop: str | list[str] | None = None
    seed: int | None = None
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None


class LoadRequest(BaseModel):
    lora_name: str = Field(min_length=1)
    lora_path: str = Field(min_length=1)
    load_inplace: bool = False


class UnloadRequest(BaseModel):
    lora_name: str = Field(min_length=1)
    lora_int_id: int | None = None


def _error(status: int, message: str, param: str | None = None, code: str | None = None,
           headers: dict[str, str] | None = None) -> JSONResponse:
    kind = "invalid_request_error" if status < 500 else "server_error"
    return JSONResponse({"error": {"message": message, "type": kind, "param": param, "code": code}}, status,
                        headers=headers)


def _choice(i: int, row: Row) -> dict[str, Any]:
    return {"index": i, "message": {"role": "assistant", "content": row.text, "refusal": None},
            "finish_reason": row.finish_reason, "logprobs": None}


def _usage(result: Result) -> dict[str, int]:
    return {"prompt_tokens": result.prompt_tokens, "completion_tokens": result.completion_tokens,
            "total_tokens": result.prompt_tokens + result.completion_tokens}


class Handlers:
    """The routes' logic, bound to one engine (``create_app`` wires them)."""

    def __init__(self, engine: Engine, served_model_name: str, resolve_path: Callable[[str], Path],
                 request_timeout_s: float, default_max_tokens: int):
        self.engine, self.name, self.resolve_path = engine, served_model_name, resolve_path
        self.request_timeout_s, self.default_max_tokens = request_timeout_s, default_max_tokens
        self.latencies: deque[float] = deque(maxlen=1000)

    def health(self) -> PlainTextResponse:
        return PlainTextResponse("")

    def models(self) -> dict[str, Any]:
        engine = self.engine
        base = {"id": self.name, "object": "model", "created": 0, "owned_by": "ftaas",
                "root": str(engine.model_dir), "parent": None, "max_model_len": engine.context}
        loras = [{"id": a["name"], "object": "model", "created": int(a["loaded_at"]), "owned_by": "ftaas",
                  "root": a["path"], "parent": self.name} for a in engine.adapters()]
        return {"object": "list", "data": [base, *loras]}

    def stats(self) -> dict[str, Any]:
        ordered = sorted(self.latencies)
        pct = {f"p{q}": ordered[min(len(ordered) - 1, int(len(ordered) * q / 100))] if ordered else None
               for q in (50, 99)}
        return {"model": self.name, "queue_depth": self.engine.queue_depth(), "adapters": self.engine.adapters(),
                "capacity": self.engine.pool.capacity, **self.engine.stats, "latency_s": pct}

    async def load(self, body: LoadRequest) -> PlainTextResponse:
        if body.lora_name == self.name:
            return PlainTextResponse(f"The lora adapter name '{body.lora_name}' is the base model's.", 400)
        if body.load_inplace:
            await asyncio.to_thread(self.engine.unload_adapter, body.lora_name)
        try:
            path = await asyncio.to_thread(self.resolve_path, body.lora_path)
            added = await asyncio.to_thread(self.engine.load_adapter, body.lora_name, path)
        except (AdapterError, FileNotFoundError, KeyError) as exc:
            return PlainTextResponse(f"Failed to load LoRA adapter '{body.lora_name}': {exc}", 400)
        if not added:
            return PlainTextResponse(f"The lora adapter '{body.lora_name}' has already been loaded.", 400)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' added successfully.")

    async def unload(self, body: UnloadRequest) -> PlainTextResponse:
        if not await asyncio.to_thread(self.engine.unload_adapter, body.lora_name):
            return PlainTextResponse(f"The lora adapter '{body.lora_name}' cannot be found.", 404)
        return PlainTextResponse(f"Success: LoRA adapter '{body.lora_name}' removed successfully.")

    async def chat(self, request: Request) -> Any:
        try:
            body = ChatRequest.model_validate(await request.json())
        except ValidationError as exc:
            return _error(400, "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()))
        except ValueError as exc:
            return _error(400, f"the body is not JSON: {exc}")
        return await self._complete(body)

    async def _complete(self, body: ChatRequest) -> Any:
        engine = self.engine
        adapter = BASE_ADAPTER if body.model == self.name else body.model
        messages = [{"role": "system" if m.role == "developer" else m.role, "content": m.content or ""}
                    for m in body.messages]
        prompt = engine.render(messages)
        room = engine.context - len(prompt)
        wanted = body.max_completion_tokens or body.max_tokens
        if room < 1 or (wanted is not None and wanted > room):
            return _error(400, f"This model's maximum context length is {engine.context} tokens; the messages "
                          f"take {len(prompt)} and max_tokens asks for {wanted}.", "messages",
                          "context_length_exceeded")
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        loop = asyncio.get_running_loop()
        deltas: asyncio.Queue[tuple[int, str]] = asyncio.Queue()
        req = EngineRequest(prompt, wanted or min(room, self.default_max_tokens), body.n, body.temperature,
                            body.top_p, body.seed, stop, adapter)
        if body.stream:
            req.on_text = lambda i, d: loop.call_soon_threadsafe(deltas.put_nowait, (i, d))
        try:
            future = asyncio.wrap_future(engine.submit(req))
        except UnknownAdapter:
            return _error(404, f"The model `{body.model}` does not exist.", "model", "model_not_found")
        except Saturated as exc:
            return _error(503, str(exc), None, "server_busy", {"retry-after": str(exc.retry_after_s)})
        started = time.monotonic()
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": body.model}
        if body.stream:
            return StreamingResponse(self._stream(req, future, deltas, meta, body, started),
                                     media_type="text/event-stream")
        return await self._wait(req, future, meta, body, started)

    async def _wait(self, req: EngineRequest, future: asyncio.Future, meta: dict[str, Any], body: ChatRequest,
                    started: float) -> Any:
        try:
            result: Result = await asyncio.wait_for(asyncio.shield(future), self.request_timeout_s)
        except TimeoutError:
            req.cancelled.set()
            return _error(504, f"generation took longer than {self.request_timeout_s:g} s", None, "timeout")
        except UnknownAdapter:
            return _error(404, f"The model `{body.model}` was unloaded; load it again.", "model", "model_not_found")
        self.latencies.append(time.monotonic() - started)
        return {**meta, "object": "chat.completion", "choices": [_choice(i, c) for i, c in enumerate(result.choices)],
                "usage": _usage(result), "system_fingerprint": None, "service_tier": None}

    async def _stream(self, req: EngineRequest, future: asyncio.Future, deltas: asyncio.Queue,
                      meta: dict[str, Any], body: ChatRequest, started: float) -> AsyncIterator[str]:
        def chunk(choices: list[dict[str, Any]], **extra: Any) -> str:
            return f"data: {json.dumps({**meta, 'object': 'chat.completion.chunk', 'choices': choices, **extra})}\n\n"

        try:
            for i in range(body.n):
                yield chunk([{"index": i, "delta": {"role": "assistant", "content": ""}, "finish_reason": None,
                              "logprobs": None}])
            deadline = started + self.request_timeout_s
            while not (future.done() and deltas.empty()):
                try:
                    i, delta = await asyncio.wait_for(deltas.get(), max(0.01, min(0.25, deadline - time.monotonic())))
                except TimeoutError:
                    if time.monotonic() > deadline:
                        req.cancelled.set()
                        yield chunk([], error={"message": "generation timed out", "code": "timeout"})
                        return
                    continue
                yield chunk([{"index": i, "delta": {"content": delta}, "finish_reason": None, "logprobs": None}])
            result: Result = future.result()
        except BaseException:  # the client went away (CancelledError) or the engine failed: stop the rows
            req.cancelled.set()
            raise
        self.latencies.append(time.monotonic() - started)
        for i, row in enumerate(result.choices):
            yield chunk([{"index": i, "delta": {}, "finish_reason": row.finish_reason, "logprobs": None}])
        if body.stream_options is not None and body.stream_options.include_usage:
            yield chunk([], usage=_usage(result))
        yield "data: [DONE]\n\n"


def create_app(engine: Engine, served_model_name: str, resolve_path: Callable[[str], Path] = Path,
               request_timeout_s: float = 300.0, default_max_tokens: int = 512) -> FastAPI:
    h = Handlers(engine, served_model_name, resolve_path, request_timeout_s, default_max_tokens)
    app = FastAPI(title="ftaas embedded inference", openapi_url=None, docs_url=None, redoc_url=None)
    app.state.handlers = h
    app.add_api_route("/health", h.health, methods=["GET"])
    app.add_api_route("/v1/models", h.models, methods=["GET"])
    app.add_api_route("/stats", h.stats, methods=["GET"])
    app.add_api_route("/v1/load_lora_adapter", h.load, methods=["POST"])
    app.add_api_route("/v1/unload_lora_adapter", h.unload, methods=["POST"])
    app.add_api_route("/v1/chat/completions", h.chat, methods=["POST"], response_model=None)
    return app
