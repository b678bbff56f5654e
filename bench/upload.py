"""Upload + validate a generated ~100 MB chat JSONL over HTTP; print MB/s and the server's peak RSS growth as JSON.

    python bench/upload.py [--mb 100] [--runs 3]
    python bench/upload.py --chunked [--mb 200] [--parts 4] [--runs 1]

`--chunked` sends the file through the Uploads API with openai-python's `client.uploads.upload_file_chunked`
(parts of ceil(size / parts) bytes, at most 64 MB each, and the file's md5), checks that it becomes a processed
file whose content hashes the same, then sends it once more with a wrong md5 and checks the 400 names `md5`.

Starts `ftaas serve` in a subprocess on a temporary FTAAS_HOME (SQLite + file:// store), so the numbers include
HTTP, multipart parsing, validation, storage and the DB row. Peak RSS is the kernel's VmHWM for the server
process, reset before each upload (writing 5 to /proc/PID/clear_refs).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import openai


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_file(path: Path, megabytes: int) -> int:
    target = megabytes * 1_000_000
    with path.open("wb") as f:
        i = 0
        while f.tell() < target:
            line = {
                "messages": [
                    {
                        "role": "system",
                        "content": "You are a careful assistant who explains arithmetic step by step.",
                    },
                    {
                        "role": "user",
                        "content": f"Question {i}: what is {i} times 7, and why? " + "Explain. " * 40,
                    },
                    {
                        "role": "assistant",
                        "content": f"{i} times 7 is {i * 7}. " + "Seven groups of the number. " * 20,
                    },
                ]
            }
            f.write(json.dumps(line).encode() + b"\n")
            i += 1
    return path.stat().st_size


def rss_kib(pid: int) -> dict[str, int]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0])
    return fields


MAX_PART = 64 * 1024 * 1024


@contextmanager
def started_server(home: Path) -> Iterator[tuple[str, str, int]]:
    """`ftaas serve` on a fresh SQLite + file:// home; yields (base URL, API key, server pid)."""
    env = {**os.environ, "FTAAS_HOME": str(home), "FTAAS_MAX_UPLOAD_BYTES": str(1 << 30)}
    subprocess.run([sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, capture_output=True)
    key = subprocess.run(
        [sys.executable, "-m", "service.cli", "keys", "create", "--org", "bench"],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(200):
            try:
                httpx.get(url + "/healthz")
                break
            except httpx.TransportError:
                time.sleep(0.05)
        yield url, key, server.pid
    finally:
        server.terminate()
        server.wait(10)


def measured(pid: int, size: int, send) -> tuple[dict, Any]:  # type: ignore[no-untyped-def]
    """Run ``send()`` with the server's peak RSS reset first; its time, throughput and RSS growth, and its result."""
    Path(f"/proc/{pid}/clear_refs").write_text("5")
    before = rss_kib(pid)["VmRSS"]
    start = time.perf_counter()
    result = send()
    seconds = time.perf_counter() - start
    peak = rss_kib(pid)["VmHWM"]
    run = {
        "seconds": round(seconds, 3),
        "mb_per_s": round(size / 1e6 / seconds, 1),
        "peak_rss_growth_mb": round((peak - before) / 1024, 1),
    }
    return run, result


def plain_runs(url: str, key: str, pid: int, data: Path, size: int, runs: int) -> list[dict]:
    def send() -> httpx.Response:
        with data.open("rb") as f:
            return httpx.post(
                url + "/v1/files",
                headers={"Authorization": f"Bearer {key}"},
                data={"purpose": "fine-tune"},
                files={"file": ("train.jsonl", f)},
                timeout=600,
            )

    out = []
    for _ in range(runs):
        run, r = measured(pid, size, send)
        r.raise_for_status()  # type: ignore[attr-defined]
        assert r.json()["status"] == "processed", r.text  # type: ignore[attr-defined]
        out.append(run)
    return out


def md5_of(chunks) -> str:  # type: ignore[no-untyped-def]
    digest = hashlib.md5(usedforsecurity=False)
    for chunk in chunks:
        digest.update(chunk)
    return digest.hexdigest()


def chunked_runs(url: str, key: str, pid: int, data: Path, size: int, runs: int, parts: int) -> tuple[list, dict]:
    """The timed chunked uploads, then one with a wrong md5 (and whether any part's bytes were left behind)."""
    client = openai.OpenAI(api_key=key, base_url=url + "/v1", timeout=1200, max_retries=0)
    part_size = -(-size // parts)
    assert part_size <= MAX_PART, f"{parts} parts of {part_size} bytes: use more parts (at most 64 MB each)"
    with data.open("rb") as f:
        md5 = md5_of(iter(lambda: f.read(1 << 20), b""))

    def send(checksum: str):  # type: ignore[no-untyped-def]
        return lambda: client.uploads.upload_file_chunked(
            file=data, mime_type="text/jsonl", purpose="fine-tune", part_size=part_size, md5=checksum
        )

    out = []
    for _ in range(runs):
        run, upload = measured(pid, size, send(md5))
        assert upload.status == "completed" and upload.file and upload.file.status == "processed", upload
        assert upload.file.bytes == size, upload
        with client.files.with_streaming_response.content(upload.file.id) as response:
            assert md5_of(response.iter_bytes(1 << 20)) == md5, "the joined file differs from the one sent"
        out.append({**run, "parts": -(-size // part_size), "part_size": part_size})
    wrong = "0" * 32 if md5 != "0" * 32 else "1" * 32

    def mismatch() -> str | None:
        try:
            client.uploads.upload_file_chunked(
                file=data, mime_type="text/jsonl", purpose="fine-tune", part_size=part_size, md5=wrong
            )
        except openai.BadRequestError as e:
            return e.body.get("param") if isinstance(e.body, dict) else None  # type: ignore[union-attr]
        return None

    run, param = measured(pid, size, mismatch)
    assert param == "md5", f"a wrong md5 was not refused with param md5 (got {param!r})"
    leftover = [p for p in (data.parent / "objects" / "uploads").rglob("*") if p.is_file()]
    return out, {**run, "refused_param": param, "leftover_part_files": len(leftover)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=None, help="file size in MB (default 100; 200 with --chunked)")
    ap.add_argument("--runs", type=int, default=None, help="timed uploads (default 3; 1 with --chunked)")
    ap.add_argument("--chunked", action="store_true", help="use the Uploads API (upload_file_chunked)")
    ap.add_argument("--parts", type=int, default=4, help="with --chunked: how many parts (at least 3)")
    ap.add_argument("--also-running", default="nothing else", help="what else used the machine (recorded)")
    args = ap.parse_args()
    megabytes = args.mb or (200 if args.chunked else 100)
    runs = args.runs or (1 if args.chunked else 3)
    if args.chunked and args.parts < 3:
        ap.error("--parts must be at least 3")
    result: dict = {"bench": "upload-chunked" if args.chunked else "upload"}
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        data = home / "train.jsonl"
        size = make_file(data, megabytes)
        with started_server(home) as (url, key, pid):
            if args.chunked:
                result["runs"], result["md5_mismatch"] = chunked_runs(url, key, pid, data, size, runs, args.parts)
            else:
                result["runs"] = plain_runs(url, key, pid, data, size, runs)
    best = max(result["runs"], key=lambda r: r["mb_per_s"])
    result.update(
        {
            "bytes": size,
            "best_mb_per_s": best["mb_per_s"],
            "max_peak_rss_growth_mb": max(r["peak_rss_growth_mb"] for r in result["runs"]),
            "also_running": args.also_running,
            "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        }
    )
    if args.chunked:
        result["goal_peak_rss_growth_mb"] = 64
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
