"""The Uploads API through openai-python on both stacks: parts become one ordinary, validated file, and every
other way an upload ends (refused, cancelled, expired) leaves none of its bytes behind."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import openai
import pytest
from sqlalchemy import select, update

from service.db import session_scope
from service.files import janitor
from service.ids import now
from service.orm import UploadPartRow, UploadRow
from tests.live import LiveAPI
from tests.service.helpers import error_of, example, jsonl

BASE = "tiny-aligned"


@pytest.fixture
def strict(api: LiveAPI) -> openai.OpenAI:
    """A new org's client that parses every response into the SDK's own types, strictly."""
    return api.client(_strict_response_validation=True)


def _leftovers(api: LiveAPI, upload_id: str) -> tuple[list[str], int]:
    """(the upload's part objects, its part rows): what a finished upload must not keep."""
    with session_scope(api.settings.database_url) as session:
        rows = len(session.scalars(select(UploadPartRow.id).where(UploadPartRow.upload_id == upload_id)).all())
    return api.store.list(f"uploads/{upload_id}/"), rows


def _started(client: openai.OpenAI, data: bytes, parts: int = 3, declared: int | None = None, **extra):  # type: ignore[no-untyped-def]
    """An upload of ``data`` with its parts sent but not completed; returns (upload, part ids)."""
    upload = client.uploads.create(
        bytes=len(data) if declared is None else declared, filename="t.jsonl", mime_type="text/jsonl",
        purpose="fine-tune", **extra,
    )  # fmt: skip
    size = -(-len(data) // parts)
    ids = [client.uploads.parts.create(upload.id, data=data[i : i + size]).id for i in range(0, len(data), size)]
    return upload, ids


def test_chunked_upload_becomes_an_ordinary_processed_file(api: LiveAPI, strict: openai.OpenAI, tmp_path: Path) -> None:
    data = jsonl(40)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    upload = strict.uploads.upload_file_chunked(
        file=path, mime_type="text/jsonl", purpose="fine-tune", part_size=len(data) // 3 + 1,
        md5=hashlib.md5(data).hexdigest(),
    )  # fmt: skip
    assert upload.status == "completed" and upload.filename == "big.jsonl" and upload.bytes == len(data)
    assert upload.expires_at == upload.created_at + 3600
    file = upload.file
    assert file is not None and file.status == "processed" and file.bytes == len(data) and file.id.startswith("file-")
    assert strict.files.retrieve(file.id).status == "processed"
    assert file.id in [f.id for f in strict.files.list()]
    assert strict.files.content(file.id).content == data
    assert _leftovers(api, upload.id) == ([], 0)
    api.register_base(BASE)
    assert strict.fine_tuning.jobs.create(model=BASE, training_file=file.id).training_file == file.id


def test_parts_join_in_order_the_file_expires_as_asked_and_a_retried_complete_gets_the_same_answer(
    strict: openai.OpenAI,
) -> None:
    data = jsonl(12)
    upload, ids = _started(strict, data, parts=4, expires_after={"anchor": "created_at", "seconds": 7200})
    done = strict.uploads.complete(upload.id, part_ids=ids)
    assert done.file is not None and done.file.expires_at == done.file.created_at + 7200  # the file's own expiry
    again = strict.uploads.complete(upload.id, part_ids=ids)
    assert again.file is not None and done.file is not None and again.file.id == done.file.id
    assert strict.files.content(done.file.id).content == data
    with pytest.raises(openai.BadRequestError) as e:
        strict.uploads.complete(upload.id, part_ids=ids[::-1])
    assert error_of(e.value)["code"] == "upload_completed"


def test_an_md5_mismatch_is_a_400_that_keeps_nothing(api: LiveAPI, strict: openai.OpenAI) -> None:
    data = jsonl(12)
    upload, ids = _started(strict, data)
    stored = api.store.list("files/")
    with pytest.raises(openai.BadRequestError) as e:
        strict.uploads.complete(upload.id, part_ids=ids, md5=hashlib.md5(data + b"x").hexdigest())
    assert error_of(e.value)["param"] == "md5"
    assert _leftovers(api, upload.id) == ([], 0)
    assert strict.files.list().data == [] and api.store.list("files/") == stored
    with pytest.raises(openai.BadRequestError):
        strict.uploads.complete(upload.id, part_ids=ids)  # discarded for good


def test_a_total_other_than_the_declared_bytes_is_a_400(api: LiveAPI, strict: openai.OpenAI) -> None:
    data = jsonl(12)
    upload, ids = _started(strict, data, declared=len(data) + 1)
    with pytest.raises(openai.BadRequestError) as e:
        strict.uploads.complete(upload.id, part_ids=ids)
    assert error_of(e.value)["param"] == "bytes"
    with pytest.raises(openai.BadRequestError) as e:
        strict.uploads.complete(upload.id, part_ids=ids[:1] + ["part_nope"])
    assert error_of(e.value)["param"] == "part_ids"
    # Bookkeeping mistakes leave the upload pending, so the client may still fix them; it cancels instead.
    assert strict.uploads.cancel(upload.id).status == "cancelled"
    assert _leftovers(api, upload.id) == ([], 0)


def test_a_bad_line_is_named_and_nothing_is_left(api: LiveAPI, strict: openai.OpenAI) -> None:
    bad = example(4)
    bad["messages"][1]["role"] = "robot"
    lines = [json.dumps(example(i)) for i in range(12)]
    lines[4] = json.dumps(bad)
    data = ("\n".join(lines) + "\n").encode()
    upload, ids = _started(strict, data)
    stored = api.store.list("files/")
    with pytest.raises(openai.BadRequestError) as e:
        strict.uploads.complete(upload.id, part_ids=ids)
    error = error_of(e.value)
    assert error["code"] == "invalid_file_format"
    assert "line 5" in error["message"] and "messages[1].role" in error["message"], error
    assert _leftovers(api, upload.id) == ([], 0)
    assert strict.files.list().data == []
    assert api.store.list("files/") == stored


def test_cancel_leaves_nothing_and_ends_the_upload(api: LiveAPI, strict: openai.OpenAI) -> None:
    upload, ids = _started(strict, jsonl(12), parts=2)
    assert len(api.store.list(f"uploads/{upload.id}/")) == 2
    cancelled = strict.uploads.cancel(upload.id)
    assert cancelled.status == "cancelled" and cancelled.file is None
    assert _leftovers(api, upload.id) == ([], 0)
    assert strict.uploads.cancel(upload.id).status == "cancelled"  # a retried cancel
    with pytest.raises(openai.BadRequestError) as e:
        strict.uploads.parts.create(upload.id, data=b"{}\n")
    assert error_of(e.value)["param"] == "upload_id"
    with pytest.raises(openai.BadRequestError):
        strict.uploads.complete(upload.id, part_ids=ids)


def test_an_expired_upload_is_refused_and_the_janitor_removes_its_parts(api: LiveAPI, strict: openai.OpenAI) -> None:
    upload, ids = _started(strict, jsonl(12), parts=2)
    with session_scope(api.settings.database_url) as session:  # an hour later, as far as this upload knows
        session.execute(update(UploadRow).where(UploadRow.id == upload.id).values(expires_at=now() - 1))
    for attempt in (
        lambda: strict.uploads.parts.create(upload.id, data=b"{}\n"),
        lambda: strict.uploads.complete(upload.id, part_ids=ids),
        lambda: strict.uploads.cancel(upload.id),
    ):
        with pytest.raises(openai.BadRequestError) as e:
            attempt()
        assert error_of(e.value)["code"] == "upload_expired" and upload.id in error_of(e.value)["message"]
    assert janitor.sweep(api.settings, api.store).expired_uploads >= 1
    assert _leftovers(api, upload.id) == ([], 0)
    with session_scope(api.settings.database_url) as session:
        assert session.scalar(select(UploadRow.status).where(UploadRow.id == upload.id)) == "expired"


def test_another_orgs_upload_is_a_404(api: LiveAPI, strict: openai.OpenAI) -> None:
    upload, ids = _started(strict, jsonl(12), parts=2)
    stranger = api.client()
    for attempt in (
        lambda: stranger.uploads.parts.create(upload.id, data=b"{}\n"),
        lambda: stranger.uploads.complete(upload.id, part_ids=ids),
        lambda: stranger.uploads.cancel(upload.id),
        lambda: stranger.uploads.cancel("upload_missing"),
    ):
        with pytest.raises(openai.NotFoundError):
            attempt()
    assert strict.uploads.complete(upload.id, part_ids=ids).status == "completed"


def test_limits_name_their_param(api: LiveAPI, server) -> None:  # type: ignore[no-untyped-def]
    small = openai.OpenAI(
        api_key=api.new_key(), base_url=server(upload_max_part_bytes=1024, upload_max_bytes=4096), max_retries=0
    )
    with pytest.raises(openai.BadRequestError) as e:
        small.uploads.create(bytes=4097, filename="t.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    assert error_of(e.value)["param"] == "bytes"
    with pytest.raises(openai.BadRequestError) as e:
        small.uploads.create(bytes=10, filename="t.jsonl", mime_type="image/png", purpose="fine-tune")
    assert error_of(e.value)["param"] == "mime_type"
    upload = small.uploads.create(bytes=4000, filename="t.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    with pytest.raises(openai.APIStatusError) as too_big:
        small.uploads.parts.create(upload.id, data=b"x" * 2048)
    assert too_big.value.status_code == 413 and error_of(too_big.value)["param"] == "data"
    assert api.store.list(f"uploads/{upload.id}/") == []
