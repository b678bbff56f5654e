"""Incremental multipart/form-data parsing over the raw request stream.

Starlette's `request.form()` spools every file part to disk with no size cap before the handler sees it; we need
to validate and store bytes as they arrive and stop reading at the size limit, so we drive python-multipart's
low-level parser ourselves.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import Message

from python_multipart.multipart import MultipartParser, parse_options_header

from service.errors import InvalidRequest


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
    return boundary


@dataclass
class MultipartStream:
    """Feed raw body chunks; get back the parts' events in order. Part data is not copied beyond one slice."""

    boundary: bytes
    _events: list[Event] = field(default_factory=list)
    _headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    _field: bytearray = field(default_factory=bytearray)
    _value: bytearray = field(default_factory=bytearray)
    _finished: bool = False

    def __post_init__(self) -> None:
        self._parser = MultipartParser(
            self.boundary,
            {
                "on_part_begin": self._on_part_begin,
                "on_header_field": lambda d, s, e: self._field.extend(d[s:e]),
                "on_header_value": lambda d, s, e: self._value.extend(d[s:e]),
                "on_header_end": self._on_header_end,
                "on_headers_finished": self._on_headers_finished,
                "on_part_data": lambda d, s, e: self._events.append(PartData(bytes(d[s:e]))),
                "on_part_end": lambda: self._events.append(PartEnd()),
                "on_end": self._on_end,
            },
        )

    def feed(self, chunk: bytes) -> list[Event]:
        try:
            self._parser.write(chunk)
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

    def _on_header_end(self) -> None:
        self._headers.append((bytes(self._field).lower(), bytes(self._value)))
        self._field.clear()
        self._value.clear()

    def _on_headers_finished(self) -> None:
        headers = dict(self._headers)
        disposition = headers.get(b"content-disposition", b"").decode("utf-8", "replace")
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
