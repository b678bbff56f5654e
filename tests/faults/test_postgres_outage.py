"""Stop PostgreSQL during API load → 503 with `retry-after` in OpenAI's error shape only while it is down, then
recovery without restarting the API.

A dedicated cluster (tests/servers.py `dedicated=True`, halted and restarted on the same port and data) serves an
in-process API; 8 client threads list jobs and files throughout. Every answer is classified by when its request
ran: wholly before the stop → 200; wholly inside the outage → 503 `service_unavailable` with `retry-after` (the
handler in service/errors.py); from 1 s after the cluster answers again → 200 (the pool pre-pings and reconnects,
service/db.py). Requests that straddle a transition may be either, but never a 500.
"""

from __future__ import annotations

import statistics
import threading
import time

import httpx
import pytest

from tests import servers
from tests.faults.conftest import FaultStack, publish

pytestmark = pytest.mark.faults

THREADS, UP_S, DOWN_S, AFTER_S, GRACE_S = 8, 2.0, 4.0, 4.0, 1.0


def test_postgres_down_answers_503_then_recovers(make_stack):
    url = servers.start_postgres("ftaas_faults_pg", dedicated=True)
    stack: FaultStack = make_stack(database_url=url, janitor_interval_s=0)
    headers = {"Authorization": f"Bearer {stack.api.new_key()}"}
    results: list[tuple[float, float, int, dict, str | None]] = []
    done = threading.Event()

    def load(i: int) -> None:
        path = ("/fine_tuning/jobs", "/files")[i % 2]
        with httpx.Client(base_url=stack.api.v1, headers=headers, timeout=30) as http:
            while not done.is_set():
                start = time.monotonic()
                r = http.get(path)
                results.append((start, time.monotonic(), r.status_code, r.json(), r.headers.get("retry-after")))

    threads = [threading.Thread(target=load, args=(i,), daemon=True) for i in range(THREADS)]
    for t in threads:
        t.start()
    time.sleep(UP_S)
    server = servers.server_at(url)
    halt_begin = time.monotonic()
    server.halt()
    halt_end = time.monotonic()
    time.sleep(DOWN_S)
    restart_begin = time.monotonic()
    server.restart()
    restart_end = time.monotonic()
    time.sleep(AFTER_S)
    done.set()
    for t in threads:
        t.join(30)

    assert {status for *_, status, _, _ in results} <= {200, 503}, sorted({r[2] for r in results})
    before = [r for r in results if r[1] < halt_begin]
    down = [r for r in results if r[0] > halt_end and r[1] < restart_begin]
    after = [r for r in results if r[0] > restart_end + GRACE_S]
    assert before and down and after
    assert all(r[2] == 200 for r in before)
    assert all(r[2] == 200 for r in after)
    for _, _, status, body, retry_after in down:
        assert status == 503 and retry_after is not None and int(retry_after) > 0
        assert set(body) == {"error"} and set(body["error"]) == {"message", "type", "param", "code"}
        assert body["error"]["code"] == "service_unavailable" and body["error"]["type"] == "server_error"
    first_ok = min(r[1] for r in results if r[0] > restart_end and r[2] == 200)
    last_503 = max((r[1] for r in results if r[2] == 503), default=restart_end)
    publish(
        "postgres-outage",
        {
            "clients": THREADS,
            "down_s": round(restart_begin - halt_end, 1),
            "requests": len(results),
            "before": {"n": len(before), "status_200": len(before)},
            "down": {
                "n": len(down),
                "status_503_with_retry_after": len(down),
                "p50_ms": round(statistics.median(r[1] - r[0] for r in down) * 1000, 1),
                "retry_after_s": int(down[0][4]),
            },
            "after": {"n": len(after), "status_200": len(after)},
            "status_500": 0,
            "first_200_after_restart_s": round(first_ok - restart_end, 2),
            "last_503_after_restart_s": round(max(0.0, last_503 - restart_end), 2),
            "postgres_restart_s": round(restart_end - restart_begin, 2),
        },
    )
