"""Restart redis-server with jobs queued and no worker running → 0 jobs lost.

The mechanism relied on is Redis persistence, as a production broker runs it: the dedicated redis-server here has
the append-only file on (fsync on every write, tests/servers.py `persistent=True`), so the Celery messages of the
queued jobs survive the restart. The sweeper's re-send (requeue_after_s) would also recover lost messages, but only
after 10 minutes by default; it is pushed out to an hour here so it cannot be what saves them: the test asserts the
queue held every message before and after the restart, and that every job then succeeds on a worker started after it.
"""

from __future__ import annotations

import time

import pytest
import redis

from tests import servers
from tests.faults.conftest import FaultStack, publish
from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import status_of

pytestmark = pytest.mark.faults

JOBS, QUEUE = 4, "gpu.default"


def test_redis_restart_with_jobs_queued_loses_none(make_stack):
    url = servers.start_redis(dedicated=True, persistent=True)
    stack: FaultStack = make_stack(broker_url=url, requeue_after_s=3600)
    client = stack.api.client()
    ids = [stack.job(client, n=12, epochs=1).id for _ in range(JOBS)]
    r = redis.Redis.from_url(url)
    before = r.llen(QUEUE)
    assert before == JOBS, before
    r.close()
    server = servers.server_at(url)
    started = time.monotonic()
    server.halt()
    server.restart()
    restart_s = time.monotonic() - started
    r = redis.Redis.from_url(url)
    after = r.llen(QUEUE)
    r.close()
    assert after == JOBS, after

    stack.worker()
    started = time.monotonic()
    for job_id in ids:
        wait_for(lambda j=job_id: status_of(client, j, "succeeded"), 240, f"{job_id}\n{stack.log_tail()}")
    publish(
        "redis-restart",
        {
            "jobs_queued": JOBS,
            "messages_before_restart": before,
            "messages_after_restart": after,
            "mechanism": "appendonly yes, appendfsync always",
            "requeue_after_s": 3600,
            "restart_s": round(restart_s, 2),
            "jobs_succeeded": JOBS,
            "jobs_lost": 0,
            "all_done_after_worker_start_s": round(time.monotonic() - started, 1),
        },
    )
