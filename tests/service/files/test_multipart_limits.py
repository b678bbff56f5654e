"""Hostile upload forms get a 4xx in OpenAI's error shape, early and in bounded memory, and leave nothing behind."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import NamedTuple

import httpx
import pytest

from tests.service.helpers import http_error, jsonl

B = b"bNd"
MP = {"Content-Type": "multipart/form-data; boundary=bNd"}


def raw_part(disposition: bytes, value: bytes, headers: bytes = b"", boundary: bytes = B) -> bytes:
    return b"--" + boundary + b"\r\nContent-Disposition: " + disposition + b"\r\n" + headers + b"\r\n" + value + b"\r\n"


def part(name: bytes, value: bytes, filename: bytes | None = None, headers: bytes = b"", boundary: bytes = B) -> bytes:
    disp = b'form-data; name="' + name + b'"' + (b'; filename="' + filename + b'"' if filename is not None else b"")
    return raw_part(disp, value, headers, boundary)


def form(*parts: bytes, boundary: bytes = B) -> bytes:
    return b"".join(parts) + b"--" + boundary + b"--\r\n"


PURPOSE = part(b"purpose", b"fine-tune")
FILE = part(b"file", jsonl(), b"train.jsonl")


def expires(seconds: bytes, anchor: bytes = b"created_at") -> bytes:
    return part(b"expires_after[anchor]", anchor) + part(b"expires_after[seconds]", seconds)


class Case(NamedTuple):
    body: bytes
    status: int
    param: str | None
    code: str | None
    content_type: str | None = MP["Content-Type"]


def boundary_of_length(n: int) -> Case:
    boundary = b"a" * n
    body = form(part(b"purpose", b"fine-tune", boundary=boundary), boundary=boundary)
    return Case(body, 400, "file", "invalid_content_type", f"multipart/form-data; boundary={boundary.decode()}")


def with_file(filename: bytes) -> bytes:
    return form(PURPOSE, part(b"file", jsonl(), filename))


PAD_HEADER = b"X-Pad: " + b"p" * 10240 + b"\r\n"

# Every body would be a valid upload but for its one flaw.
CASES: dict[str, Case] = {
    "superscript digits": Case(form(PURPOSE, expires("³⁶⁰⁰".encode()), FILE), 400, "expires_after", "invalid_value"),
    "arabic-indic digits": Case(form(PURPOSE, expires("٣٦٠٠".encode()), FILE), 400, "expires_after", "invalid_value"),
    "fullwidth digits": Case(form(PURPOSE, expires("３６００".encode()), FILE), 400, "expires_after", "invalid_value"),
    "anchor without seconds": Case(
        form(PURPOSE, part(b"expires_after[anchor]", b"created_at"), FILE), 400, "expires_after", "invalid_value"
    ),
    "invalid utf-8 purpose": Case(form(part(b"purpose", b"fine-tune\xff"), FILE), 400, "purpose", "invalid_value"),
    "invalid utf-8 seconds": Case(form(PURPOSE, expires(b"3600\xc3"), FILE), 400, "expires_after", "invalid_value"),
    "invalid utf-8 anchor": Case(
        form(PURPOSE, expires(b"3600", b"created\xe2at"), FILE), 400, "expires_after", "invalid_value"
    ),
    "purpose twice": Case(form(PURPOSE, PURPOSE, FILE), 400, "purpose", None),
    "5000-char boundary": boundary_of_length(5000),
    "71-char boundary": boundary_of_length(71),
    "boundary with a brace": Case(
        form(PURPOSE), 400, "file", "invalid_content_type", "multipart/form-data; boundary=a{b"
    ),
    "empty boundary": Case(form(PURPOSE), 400, "file", "invalid_content_type", "multipart/form-data; boundary="),
    "no content type": Case(form(PURPOSE, FILE), 400, "file", "invalid_content_type", None),
    "empty body": Case(b"", 400, "file", "invalid_multipart"),
    "NUL in filename": Case(with_file(b"tr\x00ain.jsonl"), 400, "file", "invalid_filename"),
    "NUL in RFC 2231 filename": Case(
        form(PURPOSE, raw_part(b"form-data; name=\"file\"; filename*=UTF-8''tr%00ain.jsonl", jsonl())),
        400,
        "file",
        "invalid_filename",
    ),
    "513-char filename": Case(with_file(b"x" * 507 + b".jsonl"), 400, "file", "invalid_filename"),
    "invalid utf-8 filename": Case(with_file(b"tr\xffain.jsonl"), 400, "file", "invalid_multipart"),
    "10 KiB filename": Case(with_file(b"x" * 10240), 413, "file", "headers_too_large"),
    "10 KiB part header": Case(
        form(part(b"purpose", b"fine-tune", headers=PAD_HEADER), FILE), 413, "file", "headers_too_large"
    ),
    "5 KiB purpose": Case(form(part(b"purpose", b"fine-tune" + b" " * 5120), FILE), 413, "purpose", "field_too_large"),
    "17 fields": Case(
        form(PURPOSE, *(part(f"x{i}".encode(), b"1") for i in range(16)), FILE), 400, None, "too_many_form_fields"
    ),
    "invalid purpose after the file": Case(form(FILE, part(b"purpose", b"batch")), 400, "purpose", "invalid_value"),
}


@pytest.fixture
def post(api) -> Iterator[Callable[..., httpx.Response]]:
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {api.new_key()}"}, timeout=60) as c:
        yield lambda **kw: c.post("/files", **kw)


def leftovers(api) -> tuple[list[str], list[str]]:
    """Stored objects and unfinished uploads (local temp files, S3 multipart uploads): none may appear on a reject."""
    if api.backend == "sqlite":
        tmp = api.store.root / ".tmp"
        pending = sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []
    else:
        listing = api.store.client.list_multipart_uploads(Bucket=api.store.bucket)
        pending = sorted(u["Key"] for u in listing.get("Uploads", []))
    return api.store.list(""), pending


def assert_error(response: httpx.Response, status: int, param: str | None, code: str | None) -> None:
    error = http_error(response, status, "invalid_request_error")
    assert (error["param"], error["code"]) == (param, code), error


def assert_accepts_uploads(post) -> dict:
    r = post(data={"purpose": "fine-tune"}, files={"file": ("ok.jsonl", jsonl())})
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text
    return r.json()


@pytest.mark.parametrize("case", list(CASES))
def test_hostile_form_is_a_clean_4xx(api, post, case: str) -> None:
    c = CASES[case]
    before = leftovers(api)
    headers = {"Content-Type": c.content_type} if c.content_type else {}
    assert_error(post(content=c.body, headers=headers), c.status, c.param, c.code)
    assert leftovers(api) == before
    assert_accepts_uploads(post)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_rss() -> Iterator[dict[str, int]]:
    """Samples this process's RSS (the API server is a thread of it) while the block runs: yields {"growth": bytes}."""
    base = rss_bytes()
    out = {"growth": 0}
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            out["growth"] = max(out["growth"], rss_bytes() - base)
            time.sleep(0.005)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        yield out
    finally:
        done.set()
        sampler.join()


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
@pytest.mark.parametrize(
    "field_bytes, status, code", [(64 * 1024, 413, "field_too_large"), (64, 400, "too_many_form_fields")]
)
def test_many_fields_are_refused_early_in_bounded_memory(api, post, field_bytes: int, status: int, code: str) -> None:
    """4,500 fields before the file (288 MiB of 64 KiB ones): the server stops at the limit, without the rest."""
    value = b"v" * field_bytes
    sent = {"fields": 0}

    def body() -> Iterator[bytes]:  # chunked: no Content-Length for the server to refuse up front
        for i in range(4500):
            sent["fields"] += 1
            yield part(f"f{i}".encode(), value)
        yield FILE + PURPOSE + b"--" + B + b"--\r\n"

    before = leftovers(api)
    with peak_rss() as rss:
        response = post(content=body(), headers=MP)
    assert_error(response, status, "f0" if status == 413 else None, code)
    assert response.headers["connection"] == "close"
    assert sent["fields"] * field_bytes < 32 * 1024 * 1024, sent
    assert rss["growth"] < 20 * 1024 * 1024, rss
    assert leftovers(api) == before
    assert_accepts_uploads(post)


def test_field_limits_are_inclusive(api, post) -> None:
    """Exactly max_form_fields fields of exactly max_form_field_bytes each are still a valid upload."""
    settings = api.settings
    extra = [part(f"x{i}".encode(), b"1" * settings.max_form_field_bytes) for i in range(settings.max_form_fields - 1)]
    r = post(content=form(PURPOSE, *extra, FILE), headers=MP)
    assert r.status_code == 200 and r.json()["status"] == "processed", r.text


def test_purpose_may_follow_the_file_and_boundary_may_have_70_chars(api, post) -> None:
    boundary = b"'()+_,-./:=? " * 5 + b"a" * 5
    assert len(boundary) == 70
    r = post(
        content=form(
            part(b"file", jsonl(), b"t.jsonl", boundary=boundary),
            part(b"purpose", b"fine-tune", boundary=boundary),
            boundary=boundary,
        ),
        headers={"Content-Type": f'multipart/form-data; boundary="{boundary.decode()}"'},
    )
    assert r.status_code == 200 and r.json()["purpose"] == "fine-tune", r.text


def test_ascii_expires_after_sets_expiry(api, post) -> None:
    r = post(content=form(PURPOSE, expires(b"3600"), FILE), headers=MP)
    assert r.status_code == 200, r.text
    assert r.json()["expires_at"] == r.json()["created_at"] + 3600


def test_filename_up_to_512_characters_round_trips(api, client) -> None:
    name = "ü" * 506 + ".jsonl"  # 512 characters, 1018 bytes: the column counts characters
    created = client.files.create(file=(name, jsonl()), purpose="fine-tune")
    assert client.files.retrieve(created.id).filename == name


def test_path_like_filename_is_only_a_display_name(api, client) -> None:
    before = set(api.store.list(""))
    created = client.files.create(file=("../../escape.jsonl", jsonl()), purpose="fine-tune")
    assert client.files.retrieve(created.id).filename == "../../escape.jsonl"
    assert set(api.store.list("")) - before == {f"files/{created.id}.jsonl"}
    assert client.files.content(created.id).content == jsonl()
    if api.backend == "sqlite":  # nothing was written where a joined path would have landed
        assert not (api.store.root.parent / "escape.jsonl").exists()
        assert not (api.store.root / "escape.jsonl").exists()


def test_openapi_documents_the_upload_form_and_the_content_type(api, client) -> None:
    spec = httpx.get(f"{api.base_url}/openapi.json").json()
    upload = spec["paths"]["/v1/files"]["post"]["requestBody"]
    assert upload["required"] is True
    schema = upload["content"]["multipart/form-data"]["schema"]
    assert set(schema["required"]) == {"file", "purpose"}
    assert schema["properties"]["file"] == {**schema["properties"]["file"], "type": "string", "format": "binary"}
    assert set(schema["properties"]) == {"file", "purpose", "expires_after[anchor]", "expires_after[seconds]"}
    for purpose in schema["properties"]["purpose"]["enum"]:  # every documented purpose is accepted
        assert client.files.create(file=("t.jsonl", jsonl()), purpose=purpose).status == "processed"

    created = client.files.create(file=("t.jsonl", jsonl()), purpose="fine-tune")
    documented = spec["paths"]["/v1/files/{file_id}/content"]["get"]["responses"]["200"]["content"]
    served = client.files.with_raw_response.content(created.id).headers["content-type"]
    assert list(documented) == [served]
