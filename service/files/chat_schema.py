"""The chat fine-tuning format of one parsed JSONL line, checked (see `validation` for the file as a whole).

    {"messages": [{"role": "system" | "user" | "assistant" | "tool", "content": str}, ...]}

`messages` is the only top-level key. Every message has `role` and a string `content`; assistant messages may
also carry `weight` (int 0 or 1, default 1). Every line needs an assistant message with weight 1. OpenAI's
function-calling and naming fields are rejected with their own message (training reads only `role`, `content`
and `weight`). `fast_ok` accepts the common valid shape in a few dict lookups; `check_example` explains the
first problem of anything else as a `LineProblem` with a 0-based field path such as ``messages[2].role``.
"""

from __future__ import annotations

from typing import Any

import orjson

MAX_DEPTH = 64
"""Deepest container nesting accepted (the top-level object is depth 1). orjson alone allows 1024."""

ROLES = ("system", "user", "assistant", "tool")
TOP_LEVEL_KEYS = frozenset({"messages"})
_PLAIN_KEYS = frozenset({"role", "content"})
MESSAGE_KEYS = {
    "system": _PLAIN_KEYS,
    "user": _PLAIN_KEYS,
    "assistant": _PLAIN_KEYS | {"weight"},
    "tool": _PLAIN_KEYS,
}
_ALL_MESSAGE_KEYS = frozenset().union(*MESSAGE_KEYS.values())
# OpenAI chat fields that training would silently drop: rejected with a reason rather than "unknown key".
_TRAINED_ON = "this service trains on role, content and weight only"
_UNSUPPORTED = dict.fromkeys(
    ("tools", "parallel_tool_calls", "tool_calls", "tool_call_id"),
    f"function calling is not supported; {_TRAINED_ON}",
) | {"name": f"message names are not supported; {_TRAINED_ON}"}

_MISSING: Any = object()
_ROLE_LIST = ", ".join(ROLES)
TOO_DEEP = f"JSON is nested more than {MAX_DEPTH} levels deep"


class LineProblem(Exception):
    """Raised inside the per-line schema check; carries the field path and message."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


# -- checks -----------------------------------------------------------------------------------------


def fast_ok(obj: Any) -> bool:
    """True for the common shape of a valid example: only `messages`, each message `role` + string `content`
    (plus an int `weight` on assistant messages), at least one trained assistant message.

    It accepts a subset of what `check_example` accepts and rejects nothing itself: whatever it returns False
    for goes through the full check. Membership tests use tuples, not sets, so unhashable values cannot raise.
    """
    if type(obj) is not dict or len(obj) != 1:
        return False
    messages = obj.get("messages")
    if type(messages) is not list:
        return False
    trained = False
    for message in messages:
        if type(message) is not dict or type(message.get("content")) is not str:
            return False
        role = message.get("role")
        size = len(message)
        if size == 2:
            if role == "assistant":
                trained = True
            elif role not in ("system", "user", "tool"):
                return False
        elif size == 3 and role == "assistant":
            weight = message.get("weight")
            if type(weight) is not int:
                return False
            if weight == 1:
                trained = True
            elif weight != 0:
                return False
        else:
            return False
    return trained


def check_example(obj: Any) -> None:
    """Raises `LineProblem` for the first schema violation in a parsed line."""
    if type(obj) is not dict:
        raise LineProblem(None, f"each line must be a JSON object (got {_kind(obj)})")
    if not obj.keys() <= TOP_LEVEL_KEYS:
        key = next(k for k in obj if k not in TOP_LEVEL_KEYS)
        raise LineProblem(_path("", key), _UNSUPPORTED.get(key, "unknown key (allowed: messages)"))
    messages = obj.get("messages", _MISSING)
    if messages is _MISSING:
        raise LineProblem("messages", "is required")
    if type(messages) is not list:
        raise LineProblem("messages", f"must be an array of messages (got {_kind(messages)})")
    if not messages:
        raise LineProblem("messages", "must not be empty")
    has_assistant = trained = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if type(message) is not dict:
            raise LineProblem(where, f"must be an object (got {_kind(message)})")
        role = message.get("role", _MISSING)
        allowed = MESSAGE_KEYS.get(role) if type(role) is str else None
        if allowed is None:
            if role is _MISSING:
                raise LineProblem(f"{where}.role", "is required")
            raise LineProblem(f"{where}.role", f"must be one of {_ROLE_LIST} (got {_show(role)})")
        if not message.keys() <= allowed:
            key = next(k for k in message if k not in allowed)
            if key in _UNSUPPORTED:
                raise LineProblem(_path(where, key), _UNSUPPORTED[key])
            if key in _ALL_MESSAGE_KEYS:
                raise LineProblem(_path(where, key), f"is not allowed on a {role} message")
            raise LineProblem(_path(where, key), "unknown key")
        content = message.get("content", _MISSING)
        if type(content) is not str:
            if content is _MISSING:
                raise LineProblem(f"{where}.content", "is required")
            raise LineProblem(f"{where}.content", f"must be a string (got {_kind(content)})")
        if role == "assistant":
            has_assistant = True
            weight = message.get("weight", 1)
            if type(weight) is not int or (weight != 0 and weight != 1):
                raise LineProblem(f"{where}.weight", f"must be 0 or 1 (got {_show(weight)})")
            trained = trained or weight == 1
    if not has_assistant:
        raise LineProblem("messages", "must contain at least one assistant message")
    if not trained:
        raise LineProblem("messages", "needs at least one assistant message with weight 1 (all have weight 0)")


def depth(value: Any, depth: int) -> int:
    """Container depth of a parsed JSON value whose own depth is `depth`; stops counting past MAX_DEPTH."""
    deepest = 0
    stack = [(value, depth)]
    while stack:
        node, d = stack.pop()
        if type(node) is dict:
            node = node.values()
        elif type(node) is not list:
            continue
        deepest = max(deepest, d)
        if deepest > MAX_DEPTH:
            break
        stack.extend((child, d + 1) for child in node)
    return deepest


# -- formatting ----------------------------------------------------------------------------------------------


def _kind(value: Any) -> str:
    """JSON's name for the type of a parsed value."""
    if value is None:
        return "null"
    if type(value) is bool:
        return "a boolean"
    if type(value) in (int, float):
        return "a number"
    if type(value) is str:
        return "a string"
    if type(value) is list:
        return "an array"
    return "an object"


def _show(value: Any, limit: int = 40) -> str:
    """A parsed value as the user wrote it in JSON, shortened."""
    if type(value) in (list, dict):
        return _kind(value)
    try:
        text = orjson.dumps(value).decode()
    except orjson.JSONEncodeError:  # not reachable from orjson.loads output; never fail while explaining
        text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _path(parent: str, key: str) -> str:
    shown = key if len(key) <= 40 else key[:39] + "…"
    if shown.isidentifier():
        return f"{parent}.{shown}" if parent else shown
    return f"{parent}[{orjson.dumps(shown).decode()}]"
