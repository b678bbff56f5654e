"""Small builders shared by the API tests."""

from __future__ import annotations

import json
from typing import Any

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
    body = exc.response.json()
    assert set(body) == {"error"}, body
    assert set(body["error"]) == {"message", "type", "param", "code"}, body
    return body["error"]
