"""kill -9 of a worker at seeded random points during training, 10 trials on the distributed stack.

Two workers are always up: whichever claims a trial's job is SIGKILLed (its whole process group) once the job's
metrics events reach that trial's kill step, and a replacement is started at once, booting while the survivor's
sweeper finds the lease expired (``FAST`` lease_seconds) and resumes the job. Each trial asserts, from the job's events:
it succeeded; the resume started from the newest checkpoint the killed worker had recorded (0 when it had none);
and no step was trained by two attempts at once: every metrics event of the killed attempt is older than the
sweeper's "Worker lost" event, which is older than the resume, which is older than every event of the survivor.
"""

from __future__ import annotations

import random
import time
import uuid

import pytest

from tests import servers
from tests.faults.conftest import FAST, FaultStack, NamedWorker, publish
from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import status_of

pytestmark = pytest.mark.faults

TRIALS, SEED, EPOCHS, N = 10, 20, 3, 16  # 16 chats, batch 4, 3 epochs: 12 steps, a checkpoint every 2


def _trial(stack: FaultStack, client, kill_step: int, pool: list[NamedWorker]) -> dict:
    jobs = client.fine_tuning.jobs
    job = stack.job(client, n=N, epochs=EPOCHS)

    def step() -> int:
        events = jobs.list_events(job.id, limit=3)
        return max((e.data["step"] for e in events if e.type == "metrics"), default=0)

    wait_for(lambda: step() >= kill_step, 120, f"step {kill_step}\n{stack.log_tail()}", interval=0.05)
    holder = stack.row(job.id).worker_id
    (victim,) = [w for w in pool if w.worker_id == holder]
    victim.kill9()
    killed_at_step = step()
    pool.remove(victim)
    pool.append(stack.worker())  # boots while the survivor resumes the job
    started = time.monotonic()
    wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"success after kill\n{stack.log_tail()}")
    recovered_in = time.monotonic() - started

    events = list(jobs.list_events(job.id, limit=100))[::-1]  # oldest first
    lost = [i for i, e in enumerate(events) if e.message.startswith("Worker lost (lease expired)")]
    assert len(lost) == 1, [e.message for e in events]
    starts = [i for i, e in enumerate(events) if "resumed_from_step" in (e.data or {})]
    assert len(starts) == 2 and starts[0] < lost[0] < starts[1], [e.message for e in events]
    resume = events[starts[1]].data
    saved = [e.message for e in events[: lost[0]] if e.message.startswith("Checkpoint saved")]
    dead_ckpts = [int(m.rsplit(" ", 1)[1]) for m in saved]
    assert resume["resumed_from_step"] == max(dead_ckpts, default=0) and resume["attempt"] == 2
    assert resume["worker"] != holder
    metrics = [(i, e.data["worker"], e.data["step"]) for i, e in enumerate(events) if e.type == "metrics"]
    assert all(i < lost[0] for i, w, _ in metrics if w == holder)
    alive = [s for i, w, s in metrics if w != holder]
    assert all(i > starts[1] for i, w, _ in metrics if w != holder)
    total = EPOCHS * N // 4
    assert alive == list(range(resume["resumed_from_step"] + 1, total + 1)), alive
    return {
        "kill_step": kill_step,
        "killed_at_step": killed_at_step,
        "last_checkpoint": max(dead_ckpts, default=0),
        "resumed_from_step": resume["resumed_from_step"],
        "steps_retrained": max(0, killed_at_step - resume["resumed_from_step"]),
        "kill_to_succeeded_s": round(recovered_in, 1),
    }


def test_kill_9_at_random_points_every_job_resumes(make_stack, redis_url, s3_endpoint):
    stack = make_stack(
        database_url=servers.start_postgres("ftaas_faults_kill"),
        broker_url=redis_url.rsplit("/", 1)[0] + "/2",
        storage_url=f"s3://ftaas-faults-{uuid.uuid4().hex[:10]}/objects",
        s3_endpoint_url=s3_endpoint,
        requeue_after_s=30,
    )
    client = stack.api.client()
    rng = random.Random(SEED)
    total = EPOCHS * N // 4
    kill_steps = [rng.randint(1, total - 1) for _ in range(TRIALS)]
    pool = [stack.worker(), stack.worker()]
    started = time.monotonic()
    trials = [_trial(stack, client, k, pool) for k in kill_steps]
    publish(
        "worker-kill",
        {
            "trials": TRIALS,
            "succeeded": len(trials),
            "seed": SEED,
            "steps_per_job": total,
            "checkpoint_every": 2,
            "lease_seconds": FAST["lease_seconds"],
            "kill_steps": kill_steps,
            "per_trial": trials,
            "resumed_from_last_checkpoint": sum(t["resumed_from_step"] == t["last_checkpoint"] for t in trials),
            "overlapping_attempts": 0,
            "max_kill_to_succeeded_s": max(t["kill_to_succeeded_s"] for t in trials),
            "total_s": round(time.monotonic() - started, 1),
        },
    )
