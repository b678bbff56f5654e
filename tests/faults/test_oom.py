"""Out of memory inside training → the job fails with an actionable message, and the same worker goes on.

A CPU has no memory cap torch would enforce, so the allocation failure is injected: the worker runs with the
test-only setting FTAAS_FAULT_INJECT=oom_above_batch:2 (a device that holds at most 2 examples per step), which
raises torch.OutOfMemoryError after the first step of any job with a larger batch (worker/fine_tuning/failures.py).
The job with batch_size 4 must fail with `error.code = out_of_memory` and a message naming its batch size and a
smaller one; the next job, with the batch size the message suggests, must succeed on that same worker process.
"""

from __future__ import annotations

import time
import uuid

import pytest

from tests import servers
from tests.faults.conftest import FaultStack, publish
from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import status_of

pytestmark = pytest.mark.faults


def test_out_of_memory_fails_the_job_with_advice_and_the_worker_takes_the_next(make_stack, redis_url, s3_endpoint):
    stack: FaultStack = make_stack(
        database_url=servers.start_postgres("ftaas_faults_oom"),
        broker_url=redis_url.rsplit("/", 1)[0] + "/3",
        storage_url=f"s3://ftaas-faults-{uuid.uuid4().hex[:10]}/objects",
        s3_endpoint_url=s3_endpoint,
    )
    client = stack.api.client()
    worker = stack.worker(FTAAS_FAULT_INJECT="oom_above_batch:2")
    started = time.monotonic()
    big = stack.job(client, batch=4)
    wait_for(lambda: status_of(client, big.id, "failed"), 180, f"the OOM failure\n{stack.log_tail()}")
    failed_in = time.monotonic() - started
    failed = client.fine_tuning.jobs.retrieve(big.id)
    assert failed.error.code == "out_of_memory" and failed.error.param == "hyperparameters.batch_size"
    message = failed.error.message
    assert "out of GPU memory with batch_size 4" in message and "smaller batch_size (e.g. 2)" in message, message
    assert "FTAAS_MAX_SEQ_LEN" in message and failed.fine_tuned_model is None
    events = [e.message for e in client.fine_tuning.jobs.list_events(big.id, limit=100)]
    assert events[0] == f"Fine-tuning job failed: {message}"

    started = time.monotonic()
    small = stack.job(client, batch=2)  # what the message suggests
    wait_for(lambda: status_of(client, small.id, "succeeded"), 180, f"the next job\n{stack.log_tail()}")
    next_in = time.monotonic() - started
    assert worker.proc.poll() is None, "the worker process must survive the OOM"
    assert stack.row(small.id).worker_id == stack.row(big.id).worker_id == worker.worker_id
    publish(
        "oom",
        {
            "injected": "oom_above_batch:2",
            "failed_job": {"batch_size": 4, "error_code": failed.error.code, "message": message},
            "failed_after_s": round(failed_in, 1),
            "next_job": {"batch_size": 2, "status": "succeeded", "same_worker": True, "took_s": round(next_in, 1)},
        },
    )
