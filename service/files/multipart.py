"""Incremental multipart/form-data parsing over the raw request stream.

Starlette's `request.form()` spools every file part to disk with no size cap before the handler sees it; we need
to validate and store bytes as they arrive and stop reading at the size limit, so we drive python-multipart's
low-level parser ourselves.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from email.message import Message

from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import AppError, InvalidRequest, PayloadTooLarge

# RFC 2046 section 5.1.1: 1-70 characters from a small set, not ending in a space. python-multipart itself only
# refuses boundaries over 256 bytes, with an error of its own at construction.
_BOUNDARY = re.compile(rb"[0-9A-Za-z'()+_,\-./:=? ]{0,69}[0-9A-Za-z'()+_,\-./:=?]")


@dataclass
class PartStart:
    name: str
    filename: str | None
    content_type: str | None


@dataclass
class PartData:
    data: bytes


@dataclass
class PartEnd:
    pass


Event = PartStart | PartData | PartEnd


def boundary_of(content_type: str) -> bytes:
    ctype, params = parse_options_header(content_type)
    if ctype != b"multipart/form-data":
        raise InvalidRequest(
            "Expected a multipart/form-data body with a `file` part and a `purpose` field.",
            param="file",
            code="invalid_content_type",
        )
    boundary = params.get(b"boundary")
    if not boundary:
        raise InvalidRequest(
            "multipart/form-data body has no boundary.", param="file", code="invalid_content_type"
        )
    if not _BOUNDARY.fullmatch(boundary):
        raise InvalidRequest(
            "Invalid multipart boundary: RFC 2046 allows 1 to 70 letters, digits and '()+_,-./:=? characters.",
            param="file",
            code="invalid_content_type",
        )
    return boundary


@dataclass
class MultipartStream:
    """Feed raw body chunks; get back the parts' events in order. Part data is not copied beyond one slice."""

    boundary: bytes
    max_header_bytes: int
    _events: list[Event] = field(default_factory=list)
    _headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _header_bytes: int = 0
    _field: bytearray = field(default_factory=bytearray)
    _value: bytearray = field(default_factory=bytearray)
    _finished: bool = False

    def __post_init__(self) -> None:
        self._parser = MultipartParser(
            self.boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": lambda d, s, e: self._header_data(self._field, d[s:e]),
                "on_header_value": lambda d, s, e: self._header_data(self._value, d[s:e]),
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": lambda d, s, e: self._events.append(PartData(bytes(d[s:e]))),
                "on_part_end": lambda: self._events.append(PartEnd()),
                "on_end": self._on_end,
            },
            # The parser holds no header bytes itself (it hands us slices of each chunk); we bound all headers of
            # a part together in `_header_data`, with a 413 rather than its per-header parse error.
            max_header_size=sys.maxsize,
        )

    def feed(self, chunk: bytes) -> list[Event]:
        try:
            self._parser.write(chunk)
        except AppError:
            raise
        except Exception as exc:  # python-multipart raises its own error types on malformed bodies
            raise InvalidRequest(
                f"Malformed multipart body: {exc}", param="file", code="invalid_multipart"
            ) from exc
        events, self._events = self._events, []
        return events

    def finish(self) -> None:
        if not self._finished:
            raise InvalidRequest(
                "Truncated multipart body (no closing boundary).", param="file", code="invalid_multipart"
            )

    def _on_part_begin(self) -> None:
        self._headers = []
        self._header_bytes = 0

    def _header_data(self, buffer: bytearray, data: bytes) -> None:
        self._header_bytes += len(data)
        if self._header_bytes > self.max_header_bytes:
            raise PayloadTooLarge(
                f"The headers of a multipart part exceed {self.max_header_bytes} bytes.",
                param="file",
                code="headers_too_large",
            )
        buffer.extend(data)

    def _on_header_end(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        headers = dict(self._headers)
        try:
            disposition = headers.get(b"content-disposition", b"").decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                "The Content-Disposition header of a multipart part (its name or filename) is not valid UTF-8.",
                param="file",
                code="invalid_multipart",
            ) from None
        msg = Message()
        msg["content-disposition"] = disposition
        name = msg.get_param("name", header="content-disposition")
        filename = msg.get_filename()
        if not isinstance(name, str):
            raise InvalidRequest(
                "A multipart part has no field name.", param="file", code="invalid_multipart"
            )
        ctype = headers.get(b"content-type")
        self._events.append(PartStart(name, filename, ctype.decode("latin-1") if ctype else None))

    def _on_end(self) -> None:
        self._finished = True


def _param_of(name: str) -> str:
    return name.split("[", 1)[0]  # `expires_after[seconds]` is the `expires_after` parameter


@dataclass
class FormFields:
    """The form's non-file fields. They are held in memory until the body ends, so their number and size are bounded."""

    max_fields: int
    max_bytes: int
    _values: dict[str, bytearray] = field(default_factory=dict)

    def start(self, name: str) -> None:
        if name in self._values:
            raise InvalidRequest(f"Form field `{name}` is given more than once.", param=_param_of(name))
        if len(self._values) >= self.max_fields:
            raise InvalidRequest(
                f"Too many form fields: at most {self.max_fields} besides `file`.", code="too_many_form_fields"
            )
        self._values[name] = bytearray()

    def add(self, name: str, data: bytes) -> None:
        value = self._values[name]
        if len(value) + len(data) > self.max_bytes:
            raise PayloadTooLarge(
                f"Form field `{name}` exceeds {self.max_bytes} bytes (only the `file` part may be large).",
                param=_param_of(name),
                code="field_too_large",
            )
        value += data

    def text(self, name: str) -> str | None:
        """The field's value, or None when the form has no such field."""
        raw = self._values.get(name)
        if raw is None:
            return None
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRequest(
                f"Form field `{name}` is not valid UTF-8.", param=_param_of(name), code="invalid_value"
            ) from None
