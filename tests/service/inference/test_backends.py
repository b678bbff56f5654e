"""The exact requests the router sends to a vLLM-protocol backend (vLLM's documented LoRA and chat API)."""

from __future__ import annotations

import asyncio
import json

import httpx
import pytest

from service.config import Settings
from service.errors import AppError
from service.inference.backends import BackendError, Backends
from service.inference.schemas import ChatCompletionCreate, backend_body, unsupported
from service.inference.service import Target

URL = "http://vllm:8000"
TUNED = Target(base="tiny-aligned", adapter="ft:tiny-aligned:org-1:x:ftjob-1", adapter_prefix="jobs/ftjob-1/adapter/")


class FakeVllm:
    """Records requests; answers like vLLM (plain-text LoRA replies, 404 for an unknown model)."""

    def __init__(self, forget_after: int | None = None):
        self.requests: list[tuple[str, dict]] = []
        self.loaded: set[str] = set()
        self.forget_after = forget_after

    def __call__(self, request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        self.requests.append((request.url.path, body))
        if request.url.path == "/v1/load_lora_adapter":
            if body["lora_name"] in self.loaded:
                return httpx.Response(400, text=f"The lora adapter '{body['lora_name']}' has already been loaded.")
            self.loaded.add(body["lora_name"])
            return httpx.Response(200, text=f"Success: LoRA adapter '{body['lora_name']}' added successfully.")
        if body["model"] not in self.loaded | {"tiny-aligned"}:
            return httpx.Response(404, json={"error": {"message": "not found", "code": 404}})
        if self.forget_after is not None and len(self.requests) >= self.forget_after:
            self.loaded.clear()
            self.forget_after = None
        return httpx.Response(200, json={"id": "chatcmpl-1", "object": "chat.completion", "created": 1,
                                         "model": body["model"], "choices": [], "usage": {}})


def backends(fake: FakeVllm, **settings) -> Backends:
    return Backends(Settings(**settings), transport=httpx.MockTransport(fake))


def open_(b: Backends, target: Target, body: dict) -> httpx.Response:
    async def go() -> httpx.Response:
        resp = await b.open(URL, target, body)
        await resp.aread()
        await resp.aclose()
        return resp

    return asyncio.run(go())


def test_first_call_loads_the_adapter_then_completes_with_its_name():
    fake = FakeVllm()
    b = backends(fake)
    body = backend_body(ChatCompletionCreate(model=TUNED.adapter, messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=5, temperature=0), TUNED.adapter)
    open_(b, TUNED, body)
    open_(b, TUNED, body)
    assert fake.requests == [
        ("/v1/load_lora_adapter", {"lora_name": TUNED.adapter, "lora_path": "store://jobs/ftjob-1/adapter/"}),
        ("/v1/chat/completions", {"model": TUNED.adapter, "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 5, "temperature": 0.0}),
        ("/v1/chat/completions", {"model": TUNED.adapter, "messages": [{"role": "user", "content": "hi"}],
                                  "max_tokens": 5, "temperature": 0.0}),
    ]


def test_lora_root_maps_prefixes_to_a_path_the_backend_reads():
    fake = FakeVllm()
    open_(backends(fake, inference_lora_root="/mnt/ftaas/objects/"), TUNED, {"model": TUNED.adapter})
    assert fake.requests[0][1]["lora_path"] == "/mnt/ftaas/objects/jobs/ftjob-1/adapter/"


def test_a_forgotten_adapter_is_loaded_again_and_the_call_retried_once():
    fake = FakeVllm(forget_after=2)
    b = backends(fake)
    open_(b, TUNED, {"model": TUNED.adapter})  # load + chat; then the backend forgets (LRU, restart)
    open_(b, TUNED, {"model": TUNED.adapter})
    assert [p for p, _ in fake.requests] == ["/v1/load_lora_adapter", "/v1/chat/completions",
                                             "/v1/chat/completions", "/v1/load_lora_adapter", "/v1/chat/completions"]


def test_a_base_model_needs_no_load_and_an_unreachable_backend_is_a_502():
    fake = FakeVllm()
    open_(backends(fake), Target(base="tiny-aligned"), {"model": "tiny-aligned"})
    assert [p for p, _ in fake.requests] == ["/v1/chat/completions"]

    def down(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    with pytest.raises(BackendError):
        asyncio.run(Backends(Settings(), transport=httpx.MockTransport(down)).open(URL, TUNED, {}))


def test_backend_4xx_passes_through_and_503_keeps_retry_after():
    def busy(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503, headers={"retry-after": "3"}, json={"error": {"message": "queue full"}})

    with pytest.raises(AppError) as err:
        asyncio.run(Backends(Settings(), transport=httpx.MockTransport(busy)).open(URL, Target(base="b"), {}))
    assert err.value.status_code == 503 and err.value.headers == {"retry-after": "3"}


def test_a_backend_429_is_our_429_convention_with_its_retry_after():
    def limited(request: httpx.Request) -> httpx.Response:  # vLLM's shape: no OpenAI type, a numeric code
        return httpx.Response(429, headers={"retry-after": "7"}, json={"error": {"message": "slow down", "code": 429}})

    with pytest.raises(AppError) as err:
        asyncio.run(Backends(Settings(), transport=httpx.MockTransport(limited)).open(URL, Target(base="b"), {}))
    e = err.value
    assert (e.status_code, e.type, e.code, e.message) == (429, "requests", "rate_limit_exceeded", "slow down")
    assert e.headers == {"retry-after": "7"}


@pytest.mark.parametrize(
    ("extra", "param"),
    [({"tools": [{"type": "function"}]}, "tools"), ({"logprobs": True}, "logprobs"), ({"best_of": 2}, "best_of"),
     ({"response_format": {"type": "json_object"}}, "response_format"), ({"stream_options": {}}, "stream_options")],
)
def test_unsupported_parameters_are_named(extra: dict, param: str):
    body = ChatCompletionCreate.model_validate({"model": "m", "messages": [{"role": "user", "content": "x"}], **extra})
    assert unsupported(body)[0] == param


def test_neutral_values_of_unsupported_parameters_pass_and_never_travel():
    body = ChatCompletionCreate.model_validate({"model": "m", "messages": [{"role": "user", "content": [
        {"type": "text", "text": "a"}, {"type": "text", "text": "b"}]}], "logprobs": False, "tools": [],
        "presence_penalty": 0, "user": "u1"})
    assert unsupported(body) is None
    assert backend_body(body, "base") == {"model": "base", "messages": [{"role": "user", "content": "ab"}]}


def test_a_base_no_backend_serves_is_a_400_naming_model():
    from service.inference.service import backend_url

    assert backend_url(Settings(inference_backends={"a": "http://x:1/"}), "a") == "http://x:1"
    assert backend_url(Settings(inference_backends={"*": "http://y:2"}), "b") == "http://y:2"
    with pytest.raises(AppError) as err:
        backend_url(Settings(inference_backends={"a": "http://x:1"}), "b")
    assert (err.value.status_code, err.value.param, err.value.code) == (400, "model", "model_not_servable")


def test_timeouts_are_a_504_whichever_side_gives_up():
    def slow(request: httpx.Request) -> httpx.Response:
        raise httpx.ReadTimeout("no answer")

    def backend_gave_up(request: httpx.Request) -> httpx.Response:
        return httpx.Response(504, json={"error": {"message": "generation took longer than 1 s", "code": "timeout"}})

    for handler, words in ((slow, "did not answer"), (backend_gave_up, "longer than 1 s")):
        with pytest.raises(AppError) as err:
            asyncio.run(Backends(Settings(), transport=httpx.MockTransport(handler)).open(URL, Target(base="b"), {}))
        assert (err.value.status_code, err.value.code) == (504, "timeout") and words in err.value.message
