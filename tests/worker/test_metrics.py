"""A worker's own metrics server (worker/metrics.py), started on a free port and scraped over HTTP.

The hooks the runner calls (holding, observe, the checkpoint timer) and Celery's task signals are driven directly:
what they count is the point here, not a training run. The registry is the process's, so counters are compared
before and after."""

from __future__ import annotations

import time
from collections.abc import Iterator

import httpx
import pytest
from celery.signals import task_postrun, task_prerun
from prometheus_client.parser import text_string_to_metric_families

from tests import servers
from worker import metrics as worker_metrics

IDENTITY = {"worker": "host:w1@host", "hostname": "host", "gpu_classes": "default,a100"}


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    port = servers.free_port()
    server = worker_metrics.serve(port, IDENTITY, addr="127.0.0.1")
    yield f"http://127.0.0.1:{port}/metrics"
    server.shutdown()
    task_prerun.disconnect(worker_metrics._task_started)
    task_postrun.disconnect(worker_metrics._task_ended)


def scrape(url: str) -> dict[tuple[str, frozenset], float]:
    text = httpx.get(url, timeout=10).text
    return {
        (s.name, frozenset(s.labels.items())): s.value for f in text_string_to_metric_families(text) for s in f.samples
    }


def get(samples: dict, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def test_the_held_job_its_steps_tokens_and_attempt(url: str) -> None:
    before = scrape(url)
    assert get(before, "ftaas_worker_info", **IDENTITY) == 1 and get(before, "ftaas_worker_busy") == 0
    with worker_metrics.holding("ftjob-abc", 2):
        worker_metrics.stepped(1, 10, 100, at=50.0)  # a fresh job: step 1's tokens are all this attempt's
        worker_metrics.stepped(2, 10, 250, at=51.0)
        worker_metrics.stepped(3, 10, 400, at=52.0)
        during = scrape(url)
    after = scrape(url)

    assert get(during, "ftaas_worker_busy") == 1
    job = {"job": "ftjob-abc"}
    assert get(during, "ftaas_worker_held_job_attempt", **job) == 2
    assert get(during, "ftaas_worker_held_job_step", **job) == 3
    assert get(during, "ftaas_worker_held_job_total_steps", **job) == 10
    assert get(during, "ftaas_worker_held_job_tokens_per_second", **job) == 150  # (400 - 100) / 2 s
    for name, delta in (
        ("ftaas_worker_training_steps_total", 3),
        ("ftaas_worker_trained_tokens_total", 400),
        ("ftaas_worker_job_attempts_total", 1),
    ):
        assert get(after, name) - get(before, name) == delta, name
    assert get(after, "ftaas_worker_busy") == 0
    assert not [k for k in after if k[0].startswith("ftaas_worker_held_job")]  # gone with the lease


def test_a_resumed_attempt_counts_only_its_own_tokens(url: str) -> None:
    before = scrape(url)
    with worker_metrics.holding("ftjob-resumed", 3):
        worker_metrics.stepped(41, 50, 4100, at=10.0)  # cumulative since step 1; this step's own share is unknown
        worker_metrics.stepped(42, 50, 4200, at=10.5)
    after = scrape(url)
    assert get(after, "ftaas_worker_trained_tokens_total") - get(before, "ftaas_worker_trained_tokens_total") == 100
    worker_metrics.stepped(43, 50, 4300)  # nothing is held: ignored
    steps = "ftaas_worker_training_steps_total"
    assert get(scrape(url), steps) == get(after, steps) == get(before, steps) + 2


class _Task:  # what Celery's signals carry as `task` and `sender` (hashable, like a real task)
    name = "ftaas.process_job"


def test_checkpoint_uploads_and_celery_tasks(url: str) -> None:
    before = scrape(url)
    with worker_metrics.CHECKPOINT_UPLOAD.time():
        time.sleep(0.01)
    task = _Task()
    task_prerun.send(sender=task, task_id="t-1", task=task, args=("ftjob-x",))
    task_postrun.send(sender=task, task_id="t-1", task=task, args=("ftjob-x",), state="SUCCESS")
    after = scrape(url)

    upload = "ftaas_worker_checkpoint_upload_seconds"
    assert get(after, f"{upload}_count") - get(before, f"{upload}_count") == 1
    assert get(after, f"{upload}_sum") - get(before, f"{upload}_sum") >= 0.01
    tasks = {"task": "ftaas.process_job", "state": "SUCCESS"}
    assert get(after, "ftaas_worker_tasks_total", **tasks) - get(before, "ftaas_worker_tasks_total", **tasks) == 1
    seconds = "ftaas_worker_task_duration_seconds_count"
    assert get(after, seconds, task="ftaas.process_job") - get(before, seconds, task="ftaas.process_job") == 1
