"""`POST /v1/chat/completions` request: the part of openai-python's `CompletionCreateParams` that we serve.

A parameter we do not support is refused with a 400 naming it (``unsupported``), never silently ignored:
OpenAI's own parameters by name with what we do instead, anything else as unrecognized. A neutral value (the
SDK's default, e.g. ``logprobs: false`` or ``presence_penalty: 0``) is accepted, since it asks for nothing.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

# OpenAI parameters we do not serve, with the value that asks for nothing.
NEUTRAL: dict[str, tuple[Any, ...]] = {
    "tools": (None, []), "tool_choice": (None, "none"), "parallel_tool_calls": (None,), "functions": (None, []),
    "function_call": (None, "none"), "logprobs": (None, False), "top_logprobs": (None,), "logit_bias": (None, {}),
    "presence_penalty": (None, 0, 0.0), "frequency_penalty": (None, 0, 0.0),
    "response_format": (None, {"type": "text"}), "audio": (None,), "modalities": (None, ["text"]),
    "prediction": (None,), "web_search_options": (None,), "reasoning_effort": (None,),
    "service_tier": (None, "auto", "default"), "store": (None, False), "verbosity": (None,),
    "prompt_cache_key": (None,), "safety_identifier": (None,), "metadata": (None, {}),
}


class TextPart(BaseModel):
    model_config = ConfigDict(extra="forbid")
    type: Literal["text"]  # images, audio and files are not served: the error names the part
    text: str = Field(max_length=1_000_000)


class ChatMessage(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart] | None = Field(default=None, max_length=1_000_000)
    name: str | None = Field(default=None, max_length=256)

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")
    include_usage: bool = False
    include_obfuscation: bool | None = None  # accepted and ignored: it only pads streamed chunks


class ChatCompletionCreate(BaseModel):
    """What a backend receives, re-serialised from this model (unknown keys never travel)."""

    model_config = ConfigDict(extra="allow")  # so that ``unsupported`` can name an unknown key in its own words
    model: str = Field(min_length=1, max_length=300)
    messages: list[ChatMessage] = Field(min_length=1, max_length=2048)
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    max_completion_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    top_p: float | None = Field(default=None, gt=0.0, le=1.0)
    n: int | None = Field(default=None, ge=1, le=16)
    stop: str | list[str] | None = Field(default=None, max_length=4)
    seed: int | None = Field(default=None, ge=-(2**63), lt=2**63)
    stream: bool | None = None
    stream_options: StreamOptions | None = None
    user: str | None = Field(default=None, max_length=512)


def unsupported(body: ChatCompletionCreate) -> tuple[str, str] | None:
    """(parameter, message) for the first parameter we refuse, else None."""
    for name, value in (body.model_extra or {}).items():
        if name in NEUTRAL:
            if value in NEUTRAL[name]:
                continue
            return name, f"`{name}` is not supported by this server's chat completions (text generation only)."
        return name, f"Unrecognized request argument supplied: {name}"
    if body.messages and body.messages[-1].role == "assistant":
        return "messages", "The last message must not be the assistant's (assistant prefill is not supported)."
    if body.stream_options is not None and not body.stream:
        return "stream_options", "`stream_options` is only allowed when `stream` is true."
    return None


def backend_body(body: ChatCompletionCreate, backend_model: str) -> dict[str, Any]:
    """The request for a vLLM-protocol backend: the fields we validated, with the backend's model name."""
    out = body.model_dump(exclude_none=True, exclude=set(body.model_extra or {}) | {"user"})
    out["model"] = backend_model
    out["messages"] = [{"role": m.role, "content": m.text()} for m in body.messages]
    if out.get("stream_options"):
        out["stream_options"] = {"include_usage": out["stream_options"].get("include_usage", False)}
    return out
