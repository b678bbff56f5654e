"""Small builders shared by the API tests."""

from __future__ import annotations

import json
from typing import Any

import httpx
import openai


def example(i: int) -> dict[str, Any]:
    return {
        "messages": [
            {"role": "system", "content": "You are a calculator."},
            {"role": "user", "content": f"What is {i} + {i}?"},
            {"role": "assistant", "content": f"{2 * i}"},
        ]
    }


def jsonl(n: int = 12, start: int = 0) -> bytes:
    return "".join(json.dumps(example(i)) + "\n" for i in range(start, start + n)).encode()


def upload(client: openai.OpenAI, n: int = 12, name: str = "train.jsonl") -> Any:
    return client.files.create(file=(name, jsonl(n)), purpose="fine-tune")


def error_of(exc: openai.APIStatusError) -> dict[str, Any]:
    return http_error(exc.response, exc.status_code)


def http_error(r: httpx.Response, status: int = 400, type: str | None = None) -> dict[str, Any]:
    """The `error` object of a response that must be `status` in OpenAI's error shape (and of `type`, if given)."""
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    if type is not None:
        assert body["error"]["type"] == type, body
    return body["error"]
