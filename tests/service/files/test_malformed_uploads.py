"""Every malformed upload gets a 4xx naming line and field where there is one; nothing is left behind."""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Iterator

import httpx
import pytest

from tests.service.helpers import example, jsonl

GOOD = [json.dumps(example(i)).encode() for i in range(12)]


def with_line(bad: bytes, at: int = 3) -> bytes:
    lines = list(GOOD)
    lines.insert(at - 1, bad)
    return b"\n".join(lines) + b"\n"


def msgs(*messages: dict, **extra) -> bytes:
    return json.dumps({"messages": list(messages), **extra}).encode()


U = {"role": "user", "content": "hi"}
A = {"role": "assistant", "content": "hello"}

# name -> (file bytes, status, substrings the message must contain, param)
CONTENT_CASES: dict[str, tuple[bytes, int, tuple[str, ...], str]] = {
    "bad json": (with_line(b'{"messages": [}'), 400, ("line 3",), "file"),
    "truncated json": (with_line(b'{"messages": [{"role": "user"'), 400, ("line 3",), "file"),
    "utf8 bom": (b"\xef\xbb\xbf" + jsonl(12), 400, ("line 1", "byte-order mark"), "file"),
    "invalid utf8": (with_line(msgs(U, A).replace(b"hello", b"hel\xfflo")), 400, ("line 3", "UTF-8"), "file"),
    "utf16": (jsonl(12).decode().encode("utf-16"), 400, ("UTF-16", "UTF-8"), "file"),
    "empty file": (b"", 400, ("empty",), "file"),
    "blank line": (with_line(b""), 400, ("line 3", "blank"), "file"),
    "whitespace line": (with_line(b"   \t"), 400, ("line 3",), "file"),
    "array line": (with_line(b"[1, 2]"), 400, ("line 3", "object"), "file"),
    "string line": (with_line(b'"hello"'), 400, ("line 3", "object"), "file"),
    "null line": (with_line(b"null"), 400, ("line 3",), "file"),
    "missing messages": (with_line(b'{"prompt": "x"}'), 400, ("line 3",), "file"),
    "messages not a list": (with_line(b'{"messages": "hi"}'), 400, ("line 3", "messages"), "file"),
    "empty messages": (with_line(b'{"messages": []}'), 400, ("line 3", "messages"), "file"),
    "message not object": (with_line(msgs("hi", A)), 400, ("line 3", "messages[0]"), "file"),
    "wrong role": (
        with_line(msgs({"role": "bot", "content": "x"}, A)),
        400,
        ("line 3", "messages[0].role"),
        "file",
    ),
    "missing role": (with_line(msgs({"content": "x"}, A)), 400, ("line 3", "messages[0].role"), "file"),
    "non-string content": (
        with_line(msgs({"role": "user", "content": 5}, A)),
        400,
        ("line 3", "messages[0].content"),
        "file",
    ),
    "missing content": (with_line(msgs({"role": "user"}, A)), 400, ("line 3", "messages[0].content"), "file"),
    "no assistant": (with_line(msgs(U)), 400, ("line 3", "assistant"), "file"),
    "assistant weight 0 only": (with_line(msgs(U, {**A, "weight": 0})), 400, ("line 3", "assistant"), "file"),
    "weight 2": (with_line(msgs(U, {**A, "weight": 2})), 400, ("line 3", "messages[1].weight"), "file"),
    "weight true": (with_line(msgs(U, {**A, "weight": True})), 400, ("line 3", "messages[1].weight"), "file"),
    "weight string": (
        with_line(msgs(U, {**A, "weight": "1"})),
        400,
        ("line 3", "messages[1].weight"),
        "file",
    ),
    "weight on user": (with_line(msgs({**U, "weight": 1}, A)), 400, ("line 3", "messages[0].weight"), "file"),
    "unknown top-level key": (with_line(msgs(U, A, extra=1)), 400, ("line 3", "extra"), "file"),
    "unknown message key": (with_line(msgs({**U, "foo": 1}, A)), 400, ("line 3", "messages[0].foo"), "file"),
    "oversized line": (with_line(msgs(U, {**A, "content": "x" * 70_000})), 400, ("line 3",), "file"),
    "NaN": (with_line(msgs(U, A)[:-1] + b', "n": NaN}'), 400, ("line 3",), "file"),
    "Infinity": (
        with_line(b'{"messages": [{"role": "user", "content": "x"}], "x": Infinity}'),
        400,
        ("line 3",),
        "file",
    ),
    "lone surrogate": (
        with_line(msgs({"role": "user", "content": "PLACEHOLDER"}, A).replace(b"PLACEHOLDER", b"\\ud800")),
        400,
        ("line 3",),
        "file",
    ),
    "deep nesting": (
        with_line(b'{"messages": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        400,
        ("line 3",),
        "file",
    ),
    "too few examples": (jsonl(5), 400, ("10",), "file"),
    "errors on several lines": (
        with_line(b"[]", 2).replace(GOOD[5], b"{}"),
        400,
        ("line 2", "line 7"),
        "file",
    ),
}


@pytest.fixture
def http(api) -> Iterator[Callable[..., httpx.Response]]:
    key = api.new_key()
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {key}"}, timeout=60) as c:

        def post(**kw) -> httpx.Response:
            return c.post("/files", **kw)

        yield post


def snapshot(api) -> tuple[list[str], int]:
    from sqlalchemy import func, select

    from service.db import session_scope
    from service.orm import FileRow

    with session_scope(api.settings.database_url) as s:
        processed = s.scalar(select(func.count()).select_from(FileRow).where(FileRow.status == "processed"))
    return api.store.list("files/"), processed


def check(api, response: httpx.Response, status: int, needles: tuple[str, ...], param: str | None) -> None:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
    for needle in needles:
        assert needle in body["error"]["message"], (needle, body)
    assert body["error"]["param"] == param


@pytest.mark.parametrize("case", list(CONTENT_CASES))
def test_malformed_content(api, http, case: str) -> None:
    data, status, needles, param = CONTENT_CASES[case]
    before = snapshot(api)
    check(api, http(data={"purpose": "fine-tune"}, files={"file": ("x.jsonl", data)}), status, needles, param)
    assert snapshot(api) == before


def _raw_multipart(
    parts: list[tuple[str, str | None, bytes]], boundary: str = "XyZ", close: bool = True
) -> bytes:
    out = b""
    for name, filename, value in parts:
        disp = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
        out += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + value + b"\r\n"
    return out + (f"--{boundary}--\r\n".encode() if close else b"")


MP = {"Content-Type": "multipart/form-data; boundary=XyZ"}
BIG = jsonl(80_000)  # ~ 9.6 MB, over the test server's 8 MiB limit

REQUEST_CASES: dict[str, tuple[dict, int, tuple[str, ...], str | None]] = {
    "wrong purpose": (
        dict(data={"purpose": "batch"}, files={"file": ("x.jsonl", jsonl())}),
        400,
        ("batch",),
        "purpose",
    ),
    "missing purpose": (dict(files={"file": ("x.jsonl", jsonl())}), 400, ("purpose",), "purpose"),
    "missing file": (dict(data={"purpose": "fine-tune"}), 400, ("file",), "file"),
    "json body": (dict(json={"purpose": "fine-tune", "file": "x"}), 400, ("multipart",), "file"),
    "urlencoded body": (dict(data={"purpose": "fine-tune", "file": "x"}, files=None), 400, (), "file"),
    "no boundary": (
        dict(content=b"abc", headers={"Content-Type": "multipart/form-data"}),
        400,
        ("boundary",),
        "file",
    ),
    "truncated multipart": (
        dict(
            content=_raw_multipart(
                [("purpose", None, b"fine-tune"), ("file", "x.jsonl", jsonl())], close=False
            ),
            headers=MP,
        ),
        400,
        ("multipart",),
        "file",
    ),
    "file without filename": (
        dict(content=_raw_multipart([("purpose", None, b"fine-tune"), ("file", None, jsonl())]), headers=MP),
        400,
        ("filename",),
        "file",
    ),
    "two files": (
        dict(
            content=_raw_multipart(
                [("purpose", None, b"fine-tune"), ("file", "a.jsonl", jsonl()), ("file", "b.jsonl", jsonl())]
            ),
            headers=MP,
        ),
        400,
        ("one",),
        "file",
    ),
    "bad expires_after": (
        dict(
            data={
                "purpose": "fine-tune",
                "expires_after[anchor]": "created_at",
                "expires_after[seconds]": "5",
            },
            files={"file": ("x.jsonl", jsonl())},
        ),
        400,
        ("3600",),
        "expires_after",
    ),
    "oversized file (declared length)": (
        dict(data={"purpose": "fine-tune"}, files={"file": ("x.jsonl", BIG)}),
        413,
        ("maximum upload size",),
        "file",
    ),
    "oversized file (chunked)": (dict(headers=MP), 413, ("maximum upload size",), "file"),
}


@pytest.mark.parametrize("case", list(REQUEST_CASES))
def test_malformed_request(api, http, case: str) -> None:
    kwargs, status, needles, param = REQUEST_CASES[case]
    if (
        case == "oversized file (chunked)"
    ):  # a generator body has no Content-Length: the limit acts mid-stream
        body = _raw_multipart([("purpose", None, b"fine-tune"), ("file", "x.jsonl", BIG)])
        kwargs = dict(kwargs, content=(body[i : i + 65536] for i in range(0, len(body), 65536)))
    if case == "urlencoded body":
        kwargs = dict(
            content=b"purpose=fine-tune&file=x", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    before = snapshot(api)
    check(api, http(**kwargs), status, needles, param)
    assert snapshot(api) == before


def test_missing_or_bad_key_is_401(api) -> None:
    for headers in (
        {},
        {"Authorization": f"Bearer sk-nope-{uuid.uuid4().hex}"},
        {"Authorization": "Basic abc"},
    ):
        r = httpx.post(
            f"{api.v1}/files",
            headers=headers,
            files={"file": ("x.jsonl", jsonl())},
            data={"purpose": "fine-tune"},
        )
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
