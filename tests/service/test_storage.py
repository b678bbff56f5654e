"""The object store behaves the same on file:// and on a real S3 endpoint."""

from __future__ import annotations

import hashlib
import os
import urllib.request
from pathlib import Path

import pytest

from service.storage import (
    LocalObjectStore,
    ObjectNotFound,
    ObjectStore,
    S3ObjectStore,
    open_store,
    validate_key,
)

MiB = 1 << 20


def _pseudo_random(n: int, seed: int = 0) -> bytes:
    """Incompressible-looking bytes, quickly (a SHA-256 counter stream would be slow for 20 MiB)."""
    block = hashlib.sha256(str(seed).encode()).digest() * 4096  # 128 KiB
    reps = -(-n // len(block))
    data = bytearray(block * reps)
    # Vary each 128 KiB block so a misplaced part changes the hash.
    for i in range(reps):
        data[i * len(block)] = i % 256
        data[i * len(block) + 1] = (i // 256) % 256
    return bytes(data[:n])


def _leftover_uploads(store: ObjectStore) -> list[str]:
    if isinstance(store, S3ObjectStore):
        uploads = store.client.list_multipart_uploads(Bucket=store.bucket).get("Uploads", ())
        return [u["Key"] for u in uploads]
    assert isinstance(store, LocalObjectStore)
    tmp = store.root / ".tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.exists() else []


def test_bytes_round_trip(object_store: ObjectStore) -> None:
    object_store.put_bytes("files/file-1.jsonl", b'{"a": 1}\n')
    assert object_store.get_bytes("files/file-1.jsonl") == b'{"a": 1}\n'
    assert object_store.exists("files/file-1.jsonl")
    assert object_store.size("files/file-1.jsonl") == 9
    assert not object_store.exists("files/file-2.jsonl")


def test_empty_object(object_store: ObjectStore) -> None:
    object_store.put_bytes("empty", b"")
    assert object_store.get_bytes("empty") == b""
    assert object_store.size("empty") == 0
    with object_store.writer("empty-stream") as w:
        assert w.commit() == 0
    assert object_store.exists("empty-stream")
    assert list(object_store.iter_chunks("empty-stream")) == []


def test_overwrite_replaces(object_store: ObjectStore) -> None:
    object_store.put_bytes("k", b"old contents")
    object_store.put_bytes("k", b"new")
    assert object_store.get_bytes("k") == b"new"


def test_file_round_trip(object_store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "src.bin"
    src.write_bytes(_pseudo_random(9 * MiB + 5))  # over one part: s3transfer goes multipart
    object_store.put_file("jobs/ftjob-1/results.csv", src)
    dest = tmp_path / "out" / "deep" / "results.csv"
    object_store.download_file("jobs/ftjob-1/results.csv", dest)
    assert dest.read_bytes() == src.read_bytes()
    assert not [p for p in dest.parent.iterdir() if p != dest], "no temp files left next to the download"


def test_iter_chunks_streams(object_store: ObjectStore) -> None:
    data = _pseudo_random(2 * MiB + 123)
    object_store.put_bytes("big", data)
    chunks = list(object_store.iter_chunks("big", chunk_size=MiB))
    assert b"".join(chunks) == data
    assert max(len(c) for c in chunks) <= MiB
    assert len(chunks) >= 3


@pytest.mark.parametrize("total", [20 * MiB + 12345, 16 * MiB, 3 * MiB])
def test_streaming_writer_odd_chunks(object_store: ObjectStore, total: int) -> None:
    """20 MiB takes the multipart path (3 parts), 16 MiB ends exactly on a part, 3 MiB is one put."""
    data = _pseudo_random(total, seed=total)
    sizes = [1, 7, 65_537, 1_000_003, 3 * MiB + 1, 9 * MiB + 17]  # odd sizes, some larger than a part
    with object_store.writer("files/stream.jsonl") as w:
        offset, i = 0, 0
        while offset < total:
            n = sizes[i % len(sizes)]
            w.write(memoryview(data)[offset : offset + n] if i % 2 else data[offset : offset + n])
            offset, i = offset + n, i + 1
        assert w.bytes_written == total
        assert w.commit() == total
    assert object_store.size("files/stream.jsonl") == total
    digest = hashlib.sha256()
    for chunk in object_store.iter_chunks("files/stream.jsonl"):
        digest.update(chunk)
    assert digest.hexdigest() == hashlib.sha256(data).hexdigest()
    assert _leftover_uploads(object_store) == []
    if isinstance(object_store, S3ObjectStore):
        head = object_store.client.head_object(Bucket=object_store.bucket, Key="root/files/stream.jsonl")
        etag = head["ETag"]
        parts = -(-total // object_store.part_size)
        assert etag.strip('"').endswith(f"-{parts}") == (parts > 1), etag


def test_writer_not_visible_before_commit(object_store: ObjectStore) -> None:
    object_store.put_bytes("files/f", b"previous")
    with object_store.writer("files/f") as w:
        w.write(_pseudo_random(9 * MiB))  # past one part: on S3 a multipart upload is in flight
        assert object_store.get_bytes("files/f") == b"previous"
        with object_store.writer("files/new") as w2:
            w2.write(b"x" * 100)
            assert not object_store.exists("files/new")
            assert object_store.list("files/") == ["files/f"]
            w2.commit()
        w.commit()
    assert object_store.size("files/f") == 9 * MiB
    assert object_store.get_bytes("files/new") == b"x" * 100


@pytest.mark.parametrize("size", [100, 12 * MiB])
def test_abort_leaves_nothing(object_store: ObjectStore, size: int) -> None:
    with object_store.writer("files/aborted") as w:
        w.write(_pseudo_random(size))
        w.abort()
        w.abort()  # idempotent
        with pytest.raises(RuntimeError):
            w.write(b"more")
    # Leaving the block without commit aborts too.
    with object_store.writer("files/forgotten") as w:
        w.write(_pseudo_random(size))
    with pytest.raises(ZeroDivisionError), object_store.writer("files/raised") as w:
        w.write(_pseudo_random(size))
        raise ZeroDivisionError
    assert object_store.list("") == []
    assert not object_store.exists("files/aborted")
    assert _leftover_uploads(object_store) == []


def test_commit_then_write_fails(object_store: ObjectStore) -> None:
    with object_store.writer("k") as w:
        w.write(b"abc")
        w.commit()
        with pytest.raises(RuntimeError):
            w.write(b"d")
        with pytest.raises(RuntimeError):
            w.commit()
    assert object_store.get_bytes("k") == b"abc"


def test_list_and_delete_prefix(object_store: ObjectStore) -> None:
    keys = [
        "jobs/ftjob-1/adapter/adapter_model.safetensors",
        "jobs/ftjob-1/checkpoints/step-10/adapter_config.json",
        "jobs/ftjob-1/results.csv",
        "jobs/ftjob-10/results.csv",
        "files/file-a.jsonl",
    ]
    for key in keys:
        object_store.put_bytes(key, key.encode())
    assert object_store.list("") == sorted(keys)
    assert object_store.list("jobs/ftjob-1/") == sorted(keys[:3])
    assert object_store.list("jobs/ftjob-1") == sorted(keys[:4]), "string-prefix semantics, like S3"
    assert object_store.list("jobs/ftjob-1/check") == [keys[1]]
    assert object_store.list("nothing/") == []
    assert object_store.delete_prefix("jobs/ftjob-1/") == 3
    assert object_store.list("") == ["files/file-a.jsonl", "jobs/ftjob-10/results.csv"]
    object_store.delete("files/file-a.jsonl")
    object_store.delete("files/file-a.jsonl")  # missing is fine
    assert object_store.list("") == ["jobs/ftjob-10/results.csv"]
    assert object_store.delete_prefix("nothing/") == 0
    with pytest.raises(ValueError):
        object_store.delete_prefix("")


def test_upload_and_download_dir(object_store: ObjectStore, tmp_path: Path) -> None:
    src = tmp_path / "adapter"
    (src / "nested" / "deeper").mkdir(parents=True)
    files = {
        "adapter_config.json": b"{}",
        "adapter_model.safetensors": _pseudo_random(MiB + 1),
        "nested/tokenizer.json": b"tok",
        "nested/deeper/x.bin": b"\x00\x01",
    }
    for rel, content in files.items():
        (src / rel).write_bytes(content)
    keys = object_store.upload_dir("jobs/ftjob-2/adapter", src)
    assert keys == sorted(f"jobs/ftjob-2/adapter/{rel}" for rel in files)
    assert object_store.upload_dir("jobs/ftjob-3/adapter/", src) == [
        k.replace("ftjob-2", "ftjob-3") for k in keys
    ]

    dest = tmp_path / "restored"
    paths = object_store.download_dir("jobs/ftjob-2/adapter", dest)
    assert paths == sorted(dest / rel for rel in files)
    for rel, content in files.items():
        assert (dest / rel).read_bytes() == content
    with pytest.raises(ObjectNotFound):
        object_store.download_dir("jobs/ftjob-404/adapter", tmp_path / "none")


def test_missing_key_raises_object_not_found(object_store: ObjectStore, tmp_path: Path) -> None:
    object_store.put_bytes("a/b", b"x")
    for key in ("missing", "a/missing", "a"):  # "a" is only a prefix, not an object
        with pytest.raises(ObjectNotFound) as excinfo:
            object_store.get_bytes(key)
        assert isinstance(excinfo.value, KeyError)
        assert excinfo.value.key == key
        with pytest.raises(ObjectNotFound):
            object_store.iter_chunks(key)  # raised on the call, before iteration starts
        with pytest.raises(ObjectNotFound):
            object_store.size(key)
        with pytest.raises(ObjectNotFound):
            object_store.download_file(key, tmp_path / "out")
        assert not object_store.exists(key)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "key",
    ["", "/etc/passwd", "../x", "a/../../x", "a/./b", "a//b", "a/", "..", ".", "a\\b", "a\x00b", ".tmp/x"],
)
def test_escaping_keys_rejected(object_store: ObjectStore, key: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError):
        validate_key(key)
    with pytest.raises(ValueError):
        object_store.put_bytes(key, b"x")
    with pytest.raises(ValueError):
        object_store.writer(key)
    with pytest.raises(ValueError):
        object_store.get_bytes(key)
    with pytest.raises(ValueError):
        object_store.exists(key)
    with pytest.raises(ValueError):
        object_store.delete(key)
    if key not in ("", "a/"):  # both are valid prefixes
        with pytest.raises(ValueError):
            object_store.list(key)
    assert object_store.list("") == []


def test_presigned_url(object_store: ObjectStore) -> None:
    object_store.put_bytes("files/file-p.jsonl", b"presigned body")
    url = object_store.presigned_url("files/file-p.jsonl", expires_s=60)
    if isinstance(object_store, LocalObjectStore):
        assert url is None
        return
    assert url is not None
    with urllib.request.urlopen(url, timeout=10) as response:
        assert response.read() == b"presigned body"


def test_open_store_urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    store = open_store("file://./.ftaas/objects")
    assert isinstance(store, LocalObjectStore)
    assert store.root == tmp_path / ".ftaas" / "objects"
    assert store.url == f"file://{tmp_path}/.ftaas/objects"
    store.put_bytes("x", b"1")
    monkeypatch.chdir("/")
    assert store.get_bytes("x") == b"1", "a relative root is resolved once, at open"

    s3 = open_store("s3://bucket/some/prefix/", endpoint_url="http://127.0.0.1:1")
    assert isinstance(s3, S3ObjectStore)
    assert (s3.bucket, s3.root, s3.url) == ("bucket", "some/prefix/", "s3://bucket/some/prefix")
    assert isinstance(open_store("s3://bucket"), S3ObjectStore)
    for bad in ("/tmp/x", "file://", "s3://", "s3:///prefix", "gs://b/p", "s3://b/../x"):
        with pytest.raises(ValueError):
            open_store(bad)


def test_local_store_is_atomic_on_disk(tmp_path: Path) -> None:
    store = open_store(f"file://{tmp_path}")
    with store.writer("files/f") as w:
        w.write(b"partial")
        assert not (tmp_path / "files" / "f").exists()
        assert len(os.listdir(tmp_path / ".tmp")) == 1
        w.commit()
    assert (tmp_path / "files" / "f").read_bytes() == b"partial"
    assert os.listdir(tmp_path / ".tmp") == []
    store.delete("files/f")
    assert not (tmp_path / "files").exists(), "empty directories are pruned"


def test_postgres_fixture(postgres_url: str) -> None:
    import psycopg

    assert postgres_url.startswith("postgresql+psycopg://")
    with psycopg.connect(postgres_url.replace("postgresql+psycopg://", "postgresql://", 1)) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)
        version = conn.execute("SELECT current_setting('server_version_num')::int").fetchone()
        assert version is not None and version[0] >= 120000


def test_redis_fixture(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url)
    try:
        assert client.ping()
        client.set("ftaas-test", "1")
        assert client.get("ftaas-test") == b"1"
    finally:
        client.close()


def test_missing_server_binary_fails_with_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    from tests import servers

    monkeypatch.delenv("FTAAS_TEST_REDIS_URL", raising=False)
    monkeypatch.setattr(servers.shutil, "which", lambda name: None)
    monkeypatch.setattr(servers.os, "access", lambda path, mode: False)
    with pytest.raises(servers.ServerUnavailable, match="apt-get install -y redis-server"):
        servers.start_redis()
    monkeypatch.setenv("FTAAS_TEST_REDIS_URL", "redis://elsewhere:6379/0")
    assert servers.start_redis() == "redis://elsewhere:6379/0"
