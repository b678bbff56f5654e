"""Strict, streaming validation of chat-format JSONL training files.

The upload endpoint feeds the file's bytes to `ChatJSONLValidator.feed` as they arrive (chunk boundaries
anywhere, even inside a UTF-8 character) and calls `finish` at the end. Memory stays bounded by one chunk plus
one line of at most `max_line_bytes`; a longer line is reported and skipped without being buffered.

Each line must be one JSON object in the chat fine-tuning format::

    {"messages": [{"role": "system" | "user" | "assistant" | "tool", "content": str}, ...]}

`messages` is the only top-level key. Every message has `role` and a string `content`; assistant messages may
also carry `weight` (int 0 or 1, default 1). Every line needs an assistant message with weight 1, since only
assistant tokens are trained on. OpenAI's function-calling and naming fields (`tools`, `parallel_tool_calls`,
`name`, `tool_calls`, `tool_call_id`) are rejected with their own message rather than accepted: training
(worker/training/data.py) reads only `role`, `content` and `weight`, so they would be silently dropped. Other
unknown keys are errors too. Duplicate keys are not detected: the last one wins, as in every JSON parser the
pipeline uses (stdlib json, orjson).

The JSON itself is held to RFC 8259 without the usual leniencies: UTF-8 only (no BOM, no UTF-16), no NaN or
Infinity, no unpaired surrogate escapes, no numbers that overflow a double, nesting at most `MAX_DEPTH`
levels. One error is reported per line (its first problem); field paths use 0-based indices, e.g.
``messages[2].role``.

Speed comes from orjson (which also checks UTF-8) and a fast path that accepts the common shape of a valid
line in a few dict lookups per message; the full, explaining check runs only on lines the fast path did not
accept.
"""

from __future__ import annotations

from dataclasses import dataclass
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
_TOO_DEEP = f"JSON is nested more than {MAX_DEPTH} levels deep"


@dataclass(frozen=True)
class LineError:
    """One problem in an uploaded file; `line` is 1-based, None for problems with the file as a whole."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(
            p for p in (f"line {self.line}" if self.line is not None else None, self.field) if p
        )
        return f"{where}: {self.message}" if where else self.message


@dataclass(frozen=True)
class ValidationResult:
    examples: int
    errors: list[LineError]
    error_count: int

    @property
    def ok(self) -> bool:
        return self.error_count == 0

    def summary(self) -> str:
        """One sentence for an API error message or a file's `status_details`."""
        if self.ok:
            return f"Valid training file: {self.examples} examples."
        noun = "error" if self.error_count == 1 else "errors"
        text = f"Invalid training file: {self.error_count} {noun}. " + "; ".join(map(str, self.errors))
        more = self.error_count - len(self.errors)
        return text + (f"; and {more} more." if more else ".")


class _LineProblem(Exception):
    """Raised inside the per-line schema check; carries the field path and message."""

    def __init__(self, field: str | None, message: str) -> None:
        self.field = field
        self.message = message


class ChatJSONLValidator:
    """Validates a chat JSONL file fed in arbitrary byte chunks. Never raises on bad content."""

    def __init__(
        self, *, max_line_bytes: int = 1 << 20, min_examples: int = 10, max_errors: int = 10
    ) -> None:
        self.max_line_bytes = max_line_bytes
        self.min_examples = min_examples
        self.max_errors = max_errors
        self._errors: list[LineError] = []
        self._error_count = 0
        self._examples = 0
        self._lines = 0  # lines completed so far
        self._tail = b""  # the current, incomplete line
        self._skipping = False  # inside an over-long line, discarding bytes until its newline
        self._head_checked = False
        self._bom = False  # line 1 began with a UTF-8 BOM: stripped, reported, line 1 not checked further
        self._rejected = False  # the whole file was rejected up front (UTF-16/32); ignore the rest
        self._total_bytes = 0
        self._result: ValidationResult | None = None

    # -- streaming ---------------------------------------------------------------------------------------

    def feed(self, chunk: bytes) -> None:
        if self._result is not None:
            raise RuntimeError("feed() after finish()")
        if not chunk or self._rejected:
            return
        if type(chunk) is not bytes:
            chunk = bytes(chunk)  # bytearray / memoryview from some multipart parsers
        self._total_bytes += len(chunk)
        if not self._head_checked:
            # The encoding sniff needs the first 4 bytes, which may arrive one at a time.
            self._tail += chunk
            if len(self._tail) < 4 and b"\n" not in self._tail:
                return
            chunk, self._tail = self._check_head(self._tail), b""
            if self._rejected:
                return
        if self._skipping:
            newline = chunk.find(b"\n")
            if newline < 0:
                return
            self._skipping = False
            self._lines += 1
            chunk = chunk[newline + 1 :]
        data = self._tail + chunk if self._tail else chunk
        lines = data.split(b"\n")
        tail = lines.pop()
        if lines:
            self._check_lines(lines)
        if len(tail) > self.max_line_bytes:
            if not (self._bom and self._lines == 0):
                self._add(
                    self._lines + 1, None, f"line is longer than the maximum of {self.max_line_bytes} bytes"
                )
            self._skipping = True
            tail = b""
        self._tail = tail

    def finish(self) -> ValidationResult:
        if self._result is not None:
            return self._result
        if not self._head_checked and not self._rejected:
            self._tail = self._check_head(self._tail)
        if self._skipping:
            self._lines += 1
        elif self._tail and not self._rejected:
            self._check_lines([self._tail])
        self._tail = b""
        if not self._rejected:
            if self._total_bytes == 0:
                self._add(None, None, "the file is empty")
            elif self._examples < self.min_examples:
                self._add(
                    None,
                    None,
                    f"at least {self.min_examples} examples required, got {self._examples}"
                    + (f" valid out of {self._lines} lines" if self._examples != self._lines else ""),
                )
        self._result = ValidationResult(self._examples, list(self._errors), self._error_count)
        return self._result

    # -- internals ---------------------------------------------------------------------------------------

    def _add(self, line: int | None, field: str | None, message: str) -> None:
        self._error_count += 1
        if len(self._errors) < self.max_errors:
            self._errors.append(LineError(line, field, message))

    def _check_head(self, head: bytes) -> bytes:
        """Rejects UTF-16/32 files outright, strips (but reports) a UTF-8 BOM; returns the bytes to parse."""
        self._head_checked = True
        if head.startswith(b"\xef\xbb\xbf"):
            # Reported as line 1's error; the rest of the file is still checked.
            self._bom = True
            self._add(
                1, None, "the file starts with a UTF-8 byte-order mark (BOM): save it as UTF-8 without BOM"
            )
            return head[3:]
        utf16_bom = head.startswith((b"\xff\xfe", b"\xfe\xff", b"\x00\x00\xfe\xff"))
        if utf16_bom or b"\x00" in head[:4]:
            # A JSON text never contains a NUL byte, but UTF-16/32 text of ASCII characters is full of them.
            self._rejected = True
            self._tail = b""
            how = "starts with a UTF-16/UTF-32 byte-order mark" if utf16_bom else "contains NUL bytes"
            self._add(None, None, f"the file {how}: it looks UTF-16 or UTF-32 encoded, but must be UTF-8")
            return b""
        return head

    def _check_lines(self, lines: list[bytes]) -> None:
        loads = orjson.loads
        decode_error = orjson.JSONDecodeError
        fast_ok = _fast_ok
        max_len = self.max_line_bytes
        n = self._lines
        valid = 0
        for line in lines:
            n += 1
            if n == 1 and self._bom:
                continue  # already reported
            if len(line) > max_len:
                self._add(n, None, f"line is longer than the maximum of {max_len} bytes")
                continue
            try:
                obj = loads(line)
            except decode_error as exc:
                self._add(n, None, _describe_parse_error(line, exc))
                continue
            if fast_ok(obj) or self._explain(n, obj):
                valid += 1
        self._lines = n
        self._examples += valid

    def _explain(self, n: int, obj: Any) -> bool:
        """Full check of a line the fast path did not accept: records its first problem, or returns True."""
        try:
            _check_example(obj)
        except _LineProblem as problem:
            # Say "too deep" rather than whatever type error deep nesting happened to cause.
            if _depth(obj, 1) > MAX_DEPTH:
                self._add(n, None, _TOO_DEEP)
            else:
                self._add(n, problem.field, problem.message)
            return False
        return True


# -- per-line schema -----------------------------------------------------------------------------------------


def _fast_ok(obj: Any) -> bool:
    """True for the common shape of a valid example: only `messages`, each message `role` + string `content`
    (plus an int `weight` on assistant messages), at least one trained assistant message.

    It accepts a subset of what `_check_example` accepts and rejects nothing itself: whatever it returns False
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


def _check_example(obj: Any) -> None:
    """Raises `_LineProblem` for the first schema violation in a parsed line."""
    if type(obj) is not dict:
        raise _LineProblem(None, f"each line must be a JSON object (got {_kind(obj)})")
    if not obj.keys() <= TOP_LEVEL_KEYS:
        key = next(k for k in obj if k not in TOP_LEVEL_KEYS)
        raise _LineProblem(_path("", key), _UNSUPPORTED.get(key, "unknown key (allowed: messages)"))
    messages = obj.get("messages", _MISSING)
    if messages is _MISSING:
        raise _LineProblem("messages", "is required")
    if type(messages) is not list:
        raise _LineProblem("messages", f"must be an array of messages (got {_kind(messages)})")
    if not messages:
        raise _LineProblem("messages", "must not be empty")
    has_assistant = trained = False
    for i, message in enumerate(messages):
        where = f"messages[{i}]"
        if type(message) is not dict:
            raise _LineProblem(where, f"must be an object (got {_kind(message)})")
        role = message.get("role", _MISSING)
        allowed = MESSAGE_KEYS.get(role) if type(role) is str else None
        if allowed is None:
            if role is _MISSING:
                raise _LineProblem(f"{where}.role", "is required")
            raise _LineProblem(f"{where}.role", f"must be one of {_ROLE_LIST} (got {_show(role)})")
        if not message.keys() <= allowed:
            key = next(k for k in message if k not in allowed)
            if key in _UNSUPPORTED:
                raise _LineProblem(_path(where, key), _UNSUPPORTED[key])
            if key in _ALL_MESSAGE_KEYS:
                raise _LineProblem(_path(where, key), f"is not allowed on a {role} message")
            raise _LineProblem(_path(where, key), "unknown key")
        content = message.get("content", _MISSING)
        if type(content) is not str:
            if content is _MISSING:
                raise _LineProblem(f"{where}.content", "is required")
            raise _LineProblem(f"{where}.content", f"must be a string (got {_kind(content)})")
        if role == "assistant":
            has_assistant = True
            weight = message.get("weight", 1)
            if type(weight) is not int or (weight != 0 and weight != 1):
                raise _LineProblem(f"{where}.weight", f"must be 0 or 1 (got {_show(weight)})")
            trained = trained or weight == 1
    if not has_assistant:
        raise _LineProblem("messages", "must contain at least one assistant message")
    if not trained:
        raise _LineProblem(
            "messages", "needs at least one assistant message with weight 1 (all have weight 0)"
        )


def _depth(value: Any, depth: int) -> int:
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


# -- slow paths, run only for lines already known to be bad --------------------------------------------------


def _describe_parse_error(line: bytes, exc: orjson.JSONDecodeError) -> str:
    if not line.strip(b" \t\r"):
        return "blank line (every line must hold one JSON object)"
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"not valid UTF-8 (byte 0x{line[bad.start]:02x} at byte offset {bad.start} of the line)"
    if "\x00" in text:
        return "contains NUL bytes: the file looks UTF-16 or UTF-32 encoded, but must be UTF-8"
    if text.lstrip(" \t").startswith("\ufeff"):
        return "starts with a byte-order mark (U+FEFF): save the file as UTF-8 without BOM"
    if "depth limit" in exc.msg or "recursion" in exc.msg:
        return _TOO_DEEP
    at = exc.pos
    if text.startswith(("NaN", "Infinity"), at) or text.startswith(("-NaN", "-Infinity"), max(at - 1, 0)):
        return f"NaN and Infinity are not valid JSON numbers (column {exc.colno})"
    if "surrogate" in exc.msg:
        return f"unpaired UTF-16 surrogate escape in a string (column {exc.colno})"
    return f"invalid JSON: {exc.msg} (column {exc.colno})"


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
