"""Chat completion response objects, field for field openai-python's `ChatCompletion` (non-streaming).

A backend's answer is re-validated into these before it reaches the caller, so fields a backend adds (vLLM's
`prompt_logprobs`, `kv_transfer_params`, …) never leak and a malformed answer is our 502, not the SDK's crash.
"""

from __future__ import annotations

from typing import Literal

from pydantic import ConfigDict

from service.objects import ApiObject


class _Strict(ApiObject):
    model_config = ConfigDict(extra="ignore", json_schema_serialization_defaults_required=True)


class ChatCompletionMessage(_Strict):
    role: Literal["assistant"] = "assistant"
    content: str | None
    refusal: str | None = None


class Choice(_Strict):
    index: int
    message: ChatCompletionMessage
    finish_reason: Literal["stop", "length", "tool_calls", "content_filter", "function_call"]
    logprobs: None = None


class CompletionUsage(_Strict):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(_Strict):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[Choice]
    usage: CompletionUsage
    system_fingerprint: str | None = None
    service_tier: Literal["auto", "default", "flex", "scale", "priority"] | None = None
