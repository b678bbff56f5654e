"""Strict, streaming validation of chat-format JSONL training files.

The upload endpoint feeds the file's bytes to `ChatJSONLValidator.feed` as they arrive (chunk boundaries
anywhere, even inside a UTF-8 character) and calls `finish` at the end. Memory stays bounded by one chunk plus
one line of at most `max_line_bytes`; a longer line is reported and skipped without being buffered.

Each line must be one JSON object in the chat fine-tuning format (`chat_schema` checks it). Duplicate keys
are not detected: the last one wins, as in every JSON parser the pipeline uses (stdlib json, orjson).

The JSON itself is held to RFC 8259 without the usual leniencies: UTF-8 only (no BOM, no UTF-16), no NaN or
Infinity, no unpaired surrogate escapes, no numbers that overflow a double, nesting at most
`chat_schema.MAX_DEPTH` levels. One error is reported per line (its first problem); field paths use 0-based
indices, e.g. ``messages[2].role``.

Speed comes from orjson (which also checks UTF-8) and `chat_schema.fast_ok`; the full, explaining check runs
only on lines the fast path did not accept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from service.files import chat_schema


@dataclass(frozen=True)
class LineError:
    """One problem in an uploaded file; `line` is 1-based, None for problems with the file as a whole."""

    line: int | None
    field: str | None
    message: str

    def __str__(self) -> str:
        where = ", ".join(p for p in (f"line {self.line}" if self.line is not None else None, self.field) if p)
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


class ChatJSONLValidator:
    """Validates a chat JSONL file fed in arbitrary byte chunks. Never raises on bad content."""

    def __init__(self, *, max_line_bytes: int = 1 << 20, min_examples: int = 10, max_errors: int = 10) -> None:
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
                self._add(self._lines + 1, None, f"line is longer than the maximum of {self.max_line_bytes} bytes")
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
            self._add(1, None, "the file starts with a UTF-8 byte-order mark (BOM): save it as UTF-8 without BOM")
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
        fast_ok = chat_schema.fast_ok
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
            chat_schema.check_example(obj)
        except chat_schema.LineProblem as problem:
            # Say "too deep" rather than whatever type error deep nesting happened to cause.
            if chat_schema.depth(obj, 1) > chat_schema.MAX_DEPTH:
                self._add(n, None, chat_schema.TOO_DEEP)
            else:
                self._add(n, problem.field, problem.message)
            return False
        return True


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
        return chat_schema.TOO_DEEP
    at = exc.pos
    if text.startswith(("NaN", "Infinity"), at) or text.startswith(("-NaN", "-Infinity"), max(at - 1, 0)):
        return f"NaN and Infinity are not valid JSON numbers (column {exc.colno})"
    if "surrogate" in exc.msg:
        return f"unpaired UTF-16 surrogate escape in a string (column {exc.colno})"
    return f"invalid JSON: {exc.msg} (column {exc.colno})"
