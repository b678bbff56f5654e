"""Upload + validate a generated ~100 MB chat JSONL over HTTP; print MB/s and the server's peak RSS growth as JSON.

    python bench/upload.py [--mb 100] [--runs 3]

Starts `ftaas serve` in a subprocess on a temporary FTAAS_HOME (SQLite + file:// store), so the numbers include
HTTP, multipart parsing, validation, storage and the DB row. Peak RSS is the kernel's VmHWM for the server
process, reset before each upload (writing 5 to /proc/PID/clear_refs).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx


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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp)
        env = {**os.environ, "FTAAS_HOME": str(home), "FTAAS_MAX_UPLOAD_BYTES": str(1 << 30)}
        subprocess.run(
            [sys.executable, "-m", "service.cli", "migrate"], env=env, check=True, capture_output=True
        )
        key = subprocess.run(
            [sys.executable, "-m", "service.cli", "keys", "create", "--org", "bench"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.split()[-1]
        data = home / "train.jsonl"
        size = make_file(data, args.mb)
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
            runs = []
            for _ in range(args.runs):
                Path(f"/proc/{server.pid}/clear_refs").write_text("5")
                before = rss_kib(server.pid)["VmRSS"]
                start = time.perf_counter()
                with data.open("rb") as f:
                    r = httpx.post(
                        url + "/v1/files",
                        headers={"Authorization": f"Bearer {key}"},
                        data={"purpose": "fine-tune"},
                        files={"file": ("train.jsonl", f)},
                        timeout=600,
                    )
                seconds = time.perf_counter() - start
                r.raise_for_status()
                assert r.json()["status"] == "processed", r.text
                peak = rss_kib(server.pid)["VmHWM"]
                runs.append(
                    {
                        "seconds": round(seconds, 3),
                        "mb_per_s": round(size / 1e6 / seconds, 1),
                        "peak_rss_growth_mb": round((peak - before) / 1024, 1),
                    }
                )
        finally:
            server.terminate()
            server.wait(10)
    best = max(runs, key=lambda r: r["mb_per_s"])
    print(
        json.dumps(
            {
                "bench": "upload",
                "bytes": size,
                "runs": runs,
                "best_mb_per_s": best["mb_per_s"],
                "max_peak_rss_growth_mb": max(r["peak_rss_growth_mb"] for r in runs),
                "machine": {
                    "cpus": os.cpu_count(),
                    "python": platform.python_version(),
                    "platform": platform.platform(),
                },
            },
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
