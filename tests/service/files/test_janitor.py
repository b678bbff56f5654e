"""The files janitor removes what killed uploads leave behind, and never touches an upload still in flight."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import openai
import pytest
from fastapi.testclient import TestClient

from service.app import create_app
from service.auth.service import create_key
from service.config import Settings
from service.db import session_scope
from service.files import janitor
from service.ids import new_id, now
from service.migrate import upgrade
from service.orm import FileRow, OrgRow
from service.storage import LocalObjectStore, ObjectStore, S3ObjectStore, open_store
from tests.live import ServerProcess, settings_env, wait_for
from tests.service.helpers import jsonl, upload

MiB = 1 << 20
HOURS_LATER = 2 * 3600  # past the default 1 h age threshold


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")  # SQLite; the store under test comes from `object_store`
    settings.home.mkdir()
    upgrade(settings.database_url)
    return settings


def _in_flight(store: ObjectStore) -> list[str]:
    """Unfinished uploads: local temp parts, or S3 incomplete multipart uploads."""
    if isinstance(store, S3ObjectStore):
        return [u["Key"] for u in store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", ())]
    assert isinstance(store, LocalObjectStore)
    tmp = store.root / ".tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def _file_rows(settings: Settings, *keys: str | None, expires_at: int | None = None) -> list[str]:
    """One org's files rows, one per object key (None: an upload recorded with status 'error')."""
    ids = []
    with session_scope(settings.database_url) as session:
        org = OrgRow(id=new_id("org-"), name=new_id("org-"), created_at=now())
        session.add(org)
        session.flush()
        for key in keys:
            file_id = key.split("/")[1].split(".")[0] if key else new_id("file-")
            session.add(
                FileRow(
                    id=file_id, org_id=org.id, filename="t.jsonl", purpose="fine-tune", status="processed",
                    object_key=key, created_at=now(), expires_at=expires_at,
                )  # fmt: skip
            )
            ids.append(file_id)
    return ids


def test_stale_uploads_go_and_uploads_in_flight_stay(object_store: ObjectStore, settings: Settings) -> None:
    dead = object_store.writer("files/file-dead.jsonl")
    dead.write(b"x" * (8 * MiB + 1))  # on S3, one full part: a real multipart upload
    # A SIGKILLed server never calls commit() or abort(): the writer is simply dropped.

    # moto dates the start of every multipart upload to 2010: only the fresh part keeps it, as for a long upload.
    assert janitor.sweep(settings, object_store).stale_uploads == 0
    assert _in_flight(object_store)
    assert janitor.sweep(settings, object_store, at=time.time() + HOURS_LATER).stale_uploads == 1
    assert _in_flight(object_store) == []
    assert object_store.list("") == []


def test_orphan_objects_go_and_objects_with_rows_stay(object_store: ObjectStore, settings: Settings) -> None:
    kept, expiring = "files/file-kept.jsonl", "files/file-expiring.jsonl"
    _file_rows(settings, kept)
    orphans = ["files/file-norow.jsonl", "files/file-result.csv"]  # a row that never committed: upload, job result
    foreign = ["files/README", "jobs/ftjob-1/adapter/adapter.safetensors"]  # not a file object's key: not ours
    for key in [kept, expiring, *orphans, *foreign]:
        object_store.put_bytes(key, b"x")
    _file_rows(settings, expiring, expires_at=now() + 3 * HOURS_LATER)

    assert janitor.sweep(settings, object_store).orphans == 0  # too young: their rows may be about to commit
    assert janitor.sweep(settings, object_store, at=time.time() + HOURS_LATER).orphans == 2
    assert object_store.list("") == sorted([kept, expiring, *foreign])


def test_expired_files_are_purged_in_batches(
    object_store: ObjectStore, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(janitor, "_PURGE_BATCH", 2)
    expired = [f"files/file-exp{i}.jsonl" for i in range(4)]
    live = "files/file-live.jsonl"
    for key in [*expired, live]:
        object_store.put_bytes(key, b"x")
    _file_rows(settings, *expired, None, expires_at=now() + 3600)  # None: an error upload, no bytes
    (live_id,) = _file_rows(settings, live, expires_at=now() + 7200)

    assert janitor.sweep(settings, object_store).expired == 0  # not yet
    assert janitor.sweep(settings, object_store, at=now() + 3600).expired == 5
    assert object_store.list("") == [live]
    with session_scope(settings.database_url) as session:
        assert session.query(FileRow.id).all() == [(live_id,)]


def _janitor_threads() -> set[threading.Thread]:
    return {t for t in threading.enumerate() if t.name == "files-janitor"}


def test_janitor_thread_passes_until_stopped(settings: Settings) -> None:
    settings = settings.model_copy(update={"janitor_interval_s": 0.05, "janitor_min_age_s": 0})
    store = open_store(settings.storage_url)
    before = _janitor_threads()
    with janitor.running(settings, store):
        assert len(_janitor_threads() - before) == 1
        store.put_bytes("files/file-orphan.jsonl", b"x")
        wait_for(lambda: not store.exists("files/file-orphan.jsonl"), 10, "a later pass to remove the orphan")
    assert _janitor_threads() == before
    with janitor.running(settings.model_copy(update={"janitor_interval_s": 0}), store):
        assert _janitor_threads() == before  # 0 turns it off


def test_app_stops_its_janitor_on_shutdown(settings: Settings) -> None:
    before = _janitor_threads()
    with TestClient(create_app(settings)) as client:
        assert client.get("/healthz").status_code == 200
        assert len(_janitor_threads() - before) == 1
    assert _janitor_threads() == before


# --- a real server, SIGKILLed mid-upload


def _post_upload(base_url: str, key: str, body: Iterator[bytes] | bytes) -> None:
    """POST /v1/files, for a thread; the server's death ends it."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "multipart/form-data; boundary=BOUNDARY"}
    try:
        httpx.post(base_url + "/v1/files", content=body, headers=headers, timeout=120)
    except httpx.HTTPError:
        pass


def _multipart(data: Iterator[bytes]) -> Iterator[bytes]:
    yield b'--BOUNDARY\r\nContent-Disposition: form-data; name="purpose"\r\n\r\nfine-tune\r\n'
    yield b'--BOUNDARY\r\nContent-Disposition: form-data; name="file"; filename="t.jsonl"\r\n\r\n'
    yield from data
    yield b"\r\n--BOUNDARY--\r\n"


def _slowly(total_mib: int = 256) -> Iterator[bytes]:
    """About 3 MiB/s, so the upload is still being written when the server is killed."""
    lines = jsonl(64)
    for _ in range(total_mib * MiB // len(lines)):
        yield lines
        time.sleep(len(lines) / (3 * MiB))


def _threaded(*args: object) -> threading.Thread:
    thread = threading.Thread(target=_post_upload, args=args, daemon=True)
    thread.start()
    return thread


def test_restart_after_sigkill_removes_what_uploads_left(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path / "home")  # SQLite + file:// store
    settings.home.mkdir()
    upgrade(settings.database_url)
    with session_scope(settings.database_url) as session:
        key = create_key(session, "org-kill")
    store = open_store(settings.storage_url)
    assert isinstance(store, LocalObjectStore)
    parts = lambda: sorted((store.root / ".tmp").glob("*.part"))  # noqa: E731

    server = ServerProcess(settings_env(settings), tmp_path / "serve.log")
    kept = upload(openai.OpenAI(api_key=key, base_url=server.base_url + "/v1", max_retries=0))
    slow = _threaded(server.base_url, key, _multipart(_slowly()))
    wait_for(lambda: parts() and parts()[0].stat().st_size > 0, 30, "the slow upload to write its temp part")
    # A write lock on the DB holds the next upload between storing its bytes and committing its row.
    lock = sqlite3.connect(settings.home / "ftaas.db", isolation_level=None)
    lock.execute("BEGIN IMMEDIATE")
    try:
        blocked = _threaded(server.base_url, key, b"".join(_multipart(iter([jsonl(20)]))))
        wait_for(lambda: len(store.list("files/")) == 2, 30, "the second upload's bytes to be stored")
        server.kill9()
    finally:
        lock.rollback()
        lock.close()
    slow.join(10)
    blocked.join(10)
    assert parts(), "the interrupted upload's temp part is left behind"
    (orphan,) = [k for k in store.list("files/") if k != f"files/{kept.id}.jsonl"]

    server = ServerProcess(settings_env(settings, janitor_min_age_s=0), tmp_path / "serve.log")
    try:
        wait_for(lambda: not parts() and not store.exists(orphan), 30, "the restarted server's janitor")
        assert store.list("files/") == [f"files/{kept.id}.jsonl"]
        client = openai.OpenAI(api_key=key, base_url=server.base_url + "/v1", max_retries=0)
        assert [f.id for f in client.files.list()] == [kept.id]
        assert client.files.content(kept.id).content == jsonl()
    finally:
        server.stop()
