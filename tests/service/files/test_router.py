"""Files API through the official openai SDK and curl, against a live server (SQLite+file and Postgres+S3)."""

from __future__ import annotations

import json
import subprocess

import openai
import pytest

from tests.service.helpers import error_of, jsonl, upload


def test_upload_is_validated_and_processed(client: openai.OpenAI) -> None:
    f = upload(client, 12)
    assert f.id.startswith("file-") and f.object == "file"
    assert (f.status, f.purpose, f.filename, f.bytes) == (
        "processed",
        "fine-tune",
        "train.jsonl",
        len(jsonl(12)),
    )
    assert f.status_details is None
    assert client.files.wait_for_processing(f.id, poll_interval=0.01).status == "processed"
    assert client.files.retrieve(f.id) == f


def test_content_round_trips_bytes(client: openai.OpenAI) -> None:
    f = upload(client, 30)
    assert client.files.content(f.id).read() == jsonl(30)


def test_list_pages_newest_first_and_filters_purpose(client: openai.OpenAI) -> None:
    ids = [upload(client, 10, name=f"f{i}.jsonl").id for i in range(5)]
    first = client.files.list(limit=2)
    assert [f.id for f in first.data] == ids[::-1][:2] and first.has_more
    assert [f.id for f in client.files.list(limit=2)] == ids[::-1]  # auto-pagination across 3 pages
    assert [f.id for f in client.files.list(order="asc", limit=3)] == ids
    assert client.files.list(purpose="fine-tune-results").data == []
    last = client.files.list(limit=2, after=ids[1])
    assert [f.id for f in last.data] == [ids[0]] and last.has_more is False


def test_delete_removes_row_and_bytes(api, client: openai.OpenAI) -> None:
    f = upload(client)
    assert api.store.exists(f"files/{f.id}.jsonl")
    deleted = client.files.delete(f.id)
    assert (deleted.id, deleted.deleted, deleted.object) == (f.id, True, "file")
    assert not api.store.exists(f"files/{f.id}.jsonl")
    with pytest.raises(openai.NotFoundError) as e:
        client.files.retrieve(f.id)
    assert error_of(e.value)["param"] == "id"


def test_invalid_file_is_400_naming_line_and_field_and_kept_as_error(api, client: openai.OpenAI) -> None:
    bad = jsonl(12).replace(b'"role": "user"', b'"role": "bot"', 1)
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("bad.jsonl", bad), purpose="fine-tune")
    err = error_of(e.value)
    assert err["param"] == "file" and err["code"] == "invalid_file_format"
    assert "line 1" in err["message"] and "messages[1].role" in err["message"]
    (row,) = [f for f in client.files.list() if f.filename == "bad.jsonl"]
    assert row.status == "error" and "messages[1].role" in row.status_details
    assert client.files.wait_for_processing(row.id, poll_interval=0.01).status == "error"
    assert not api.store.exists(f"files/{row.id}.jsonl")
    with pytest.raises(openai.BadRequestError):
        client.files.content(row.id)


def test_wrong_purpose_names_purpose(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as e:
        client.files.create(file=("t.jsonl", jsonl()), purpose="assistants")
    assert error_of(e.value)["param"] == "purpose"


def test_expires_after_sets_expires_at(client: openai.OpenAI) -> None:
    f = client.files.create(
        file=("t.jsonl", jsonl()),
        purpose="fine-tune",
        expires_after={"anchor": "created_at", "seconds": 3600},
    )
    assert f.expires_at is not None and 3590 <= f.expires_at - f.created_at <= 3610


def test_curl_upload(api, tmp_path) -> None:
    key = api.new_key()
    path = tmp_path / "train.jsonl"
    path.write_bytes(jsonl(15))
    out = subprocess.run(
        [
            "curl",
            "-sS",
            "-f",
            f"{api.v1}/files",
            "-H",
            f"Authorization: Bearer {key}",
            "-F",
            "purpose=fine-tune",
            "-F",
            f"file=@{path}",
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    body = json.loads(out.stdout)
    assert body["status"] == "processed" and body["bytes"] == path.stat().st_size
    # file part first, purpose last: the order curl users happen to type
    out = subprocess.run(
        [
            "curl",
            "-sS",
            f"{api.v1}/files",
            "-H",
            f"Authorization: Bearer {key}",
            "-F",
            f"file=@{path}",
            "-F",
            "purpose=fine-tune",
        ],
        capture_output=True,
        check=True,
        text=True,
    )
    assert json.loads(out.stdout)["status"] == "processed"
