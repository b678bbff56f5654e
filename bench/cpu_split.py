"""Where a wall-clock bench's CPU went: a process group (a server and its workers), this process (the load
generator), and the rest of the machine (databases, brokers, other work), read from /proc (Linux)."""

from __future__ import annotations

import os
import platform
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")


def group_cpu_s(pgid: int) -> float:
    """CPU seconds (user + system) of the live processes in process group ``pgid`` (`ftaas serve` and its uvicorn
    workers: tests/live.py starts it in a session of its own)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # exited meanwhile
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / TICK


def machine_busy_s() -> float:
    """CPU seconds the whole machine spent busy (every core; /proc/stat minus idle and iowait)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(values) - values[3] - values[4]) / TICK


def cpu_split(server_pgid: int, run: Any) -> tuple[Any, dict[str, float]]:
    """Run ``run()`` and say where the machine's CPU went: the server, this load generator, everything else
    (PostgreSQL, Redis, moto, other work)."""
    before = (group_cpu_s(server_pgid), sum(os.times()[:2]), machine_busy_s())
    out = run()
    after = (group_cpu_s(server_pgid), sum(os.times()[:2]), machine_busy_s())
    server, client, busy = (round(b - a, 1) for a, b in zip(before, after, strict=True))
    return out, {"server_s": server, "load_generator_s": client, "rest_s": round(busy - server - client, 1)}


def per_request(cpu: dict[str, float], requests: int) -> dict[str, float]:
    """``cpu_split``'s seconds plus the server's and the whole machine's CPU milliseconds per request."""
    return {
        **cpu,
        "server_ms_per_request": round(1000 * cpu["server_s"] / requests, 2),
        "machine_ms_per_request": round(1000 * sum(cpu.values()) / requests, 2),
    }


def machine(also_running: str | None) -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "also_running": also_running,
    }
