"""S3 endpoint down during an artifact upload → retries with backoff, then `failed` with a clear message, and no
half-written artifact visible.

The stack's S3 endpoint is a FlakyProxy (proxy.py) in front of a dedicated moto server. Training runs with a
checkpoint every 2 steps; the proxy goes down at the first PUT of checkpoint step-4 (after step-2 was saved),
before those bytes reach moto, and resets every connection from then on. Each store call of the job is retried by
boto3 (FTAAS_S3_MAX_ATTEMPTS=3, sub-second jitter), and the call itself again after 1 s, then 2 s (worker/store.py)
until FTAAS_STORE_RETRY_S=6 would be passed; the job must then end `failed` with `object_store_unavailable`.
Once the endpoint is back, moto holds nothing under step-4/ (no manifest, so not even a later worker would resume
from it), no adapter, and the API lists only the complete step-2 checkpoint.
"""

from __future__ import annotations

import os
import time
import uuid

import boto3
import pytest

from tests import servers
from tests.faults.conftest import FaultStack, publish
from tests.faults.proxy import FlakyProxy
from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import status_of

pytestmark = pytest.mark.faults

ATTEMPTS, BUDGET_S = 3, 6.0
TRIES = 3  # calls at t=0, 1 and 3 s; the next wait (4 s) would end past the budget


def test_s3_down_during_checkpoint_upload_fails_cleanly(make_stack, redis_url):
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")  # moto takes any; boto3 won't sign without some
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    moto = servers.start_moto(dedicated=True)
    proxy = FlakyProxy(servers.server_at(moto).port)
    bucket = f"ftaas-faults-{uuid.uuid4().hex[:10]}"
    stack: FaultStack = make_stack(
        database_url=servers.start_postgres("ftaas_faults_s3"),
        broker_url=redis_url.rsplit("/", 1)[0] + "/4",
        storage_url=f"s3://{bucket}/objects",
        s3_endpoint_url=proxy.url,
        s3_max_attempts=ATTEMPTS,
        s3_connect_timeout_s=2.0,
        store_retry_s=BUDGET_S,
    )
    try:
        client = stack.api.client()
        job = stack.job(client, n=16, epochs=3)
        proxy.trip = f"PUT /{bucket}/objects/jobs/{job.id}/checkpoints/step-4/".encode()
        stack.worker()
        wait_for(lambda: status_of(client, job.id, "failed"), 180, f"the failure\n{stack.log_tail()}")
        failed_at = time.monotonic()
    finally:
        proxy.restore()
    assert proxy.tripped_at is not None
    job = client.fine_tuning.jobs.retrieve(job.id)
    assert job.error.code == "object_store_unavailable", job.error
    message = job.error.message
    assert "object store was unreachable" in message and f"failed {TRIES} times" in message, message
    assert job.fine_tuned_model is None
    # the first attempt died with the cut; every later one reached the (down) endpoint and was reset
    assert len(proxy.refused) == TRIES * ATTEMPTS - 1, proxy.refused
    gaps = [b - a for a, b in zip([proxy.tripped_at, *proxy.refused], proxy.refused, strict=False)]
    waits = sorted(gaps)[-2:]  # the backoff between the calls: 1 s, then 2 s
    assert waits[0] >= 0.9 and waits[1] >= 1.9, gaps
    assert 3.0 <= failed_at - proxy.tripped_at <= BUDGET_S + 5, failed_at - proxy.tripped_at

    s3 = boto3.client("s3", endpoint_url=moto, region_name="us-east-1")
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket, Prefix=f"objects/jobs/{job.id}/").get("Contents", [])]
    final_adapter = f"objects/jobs/{job.id}/adapter/"
    assert not [k for k in keys if "/checkpoints/step-4/" in k or k.startswith(final_adapter)], keys
    assert f"objects/jobs/{job.id}/checkpoints/step-2/manifest.json" in keys, keys
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id)] == [2]
    publish(
        "s3-outage",
        {
            "down_at": "first PUT of checkpoint step-4 (step-2 saved)",
            "s3_max_attempts": ATTEMPTS,
            "store_retry_s": BUDGET_S,
            "store_call_tries": TRIES,
            "retries_seen_while_down": len(proxy.refused),
            "retry_gaps_s": [round(g, 2) for g in gaps],
            "down_to_failed_s": round(failed_at - proxy.tripped_at, 1),
            "error_code": job.error.code,
            "message": job.error.message,
            "objects_under_step_4": 0,
            "checkpoints_listed": [2],
        },
    )
