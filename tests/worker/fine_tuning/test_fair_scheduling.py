"""Fair scheduling with a real worker and the tiny model: one org's queue can't starve another org's job."""

from __future__ import annotations

import uuid

from service.db import session_scope
from service.orm import JobRow
from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import Stack, stack, status_of  # noqa: F401  (the module-scoped stack)


def _claims(live: Stack, ids: list[str]) -> list[JobRow]:
    with session_scope(live.api.settings.database_url) as s:
        rows = s.query(JobRow).filter(JobRow.id.in_(ids)).all()
    return sorted((r for r in rows if r.claimed_at is not None), key=lambda r: r.claimed_at)


def test_one_orgs_queue_does_not_starve_another_orgs_job(stack: Stack) -> None:  # noqa: F811
    many = stack.api.client(stack.api.new_key(f"org-many-{uuid.uuid4().hex[:6]}"))
    one = stack.api.client(stack.api.new_key(f"org-one-{uuid.uuid4().hex[:6]}"))
    queue = [stack.job(many, n=12, epochs=1).id for _ in range(3)]  # their messages come first (FIFO broker)
    single = stack.job(one, n=12, epochs=1).id
    every = [*queue, single]
    worker = stack.worker()  # a single worker, started after every job is queued
    try:
        for job_id in every:  # each message's job runs eventually, whichever job its message started
            client = one if job_id == single else many
            done = lambda c=client, j=job_id: status_of(c, j, "succeeded")  # noqa: E731
            wait_for(done, 300, f"{job_id} to succeed\n{stack.log_tail()}")
    finally:
        worker.stop()
    order = [row.id for row in _claims(stack, every)]
    assert sorted(order) == sorted(every), order
    assert order.index(single) < 2, order  # FIFO would have run it last, after all three
    with session_scope(stack.api.settings.database_url) as s:
        attempts = {r.id: r.attempts for r in s.query(JobRow).filter(JobRow.id.in_(every))}
    assert set(attempts.values()) == {1}, attempts  # each claimed once: no job ran twice
