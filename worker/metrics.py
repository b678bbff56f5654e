"""Prometheus metrics only a worker knows: the job it holds now, its steps and tokens, checkpoint uploads, tasks.

Process model: ``ftaas worker`` runs Celery's solo pool, so the worker is one process and its tasks run in it
(nothing is forked). That process serves this module's registry with ``prometheus_client.start_http_server`` on
``worker_metrics_port`` (``ftaas worker --metrics-port``; 0 = no server), from a daemon thread. Multiprocess mode
is not needed: there are no pool children to combine, and each worker (one per GPU) is scraped on its own port, so
several workers on one host each need their own port. What the database knows (jobs, queues, heartbeats as the
service sees them) is on the API's ``/metrics``, not here, so scraping N workers never costs N DB reads.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from celery.signals import task_postrun, task_prerun
from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics, start_http_server
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

REGISTRY = CollectorRegistry()
STEPS = Counter("ftaas_worker_training_steps", "Optimizer steps trained by this worker", registry=REGISTRY)
TOKENS = Counter("ftaas_worker_trained_tokens", "Tokens trained by this worker", registry=REGISTRY)
ATTEMPTS = Counter(
    "ftaas_worker_job_attempts", "Job claims this worker took (a resumed job counts once per attempt)",
    registry=REGISTRY,
)
CHECKPOINT_UPLOAD = Histogram(
    "ftaas_worker_checkpoint_upload_seconds",
    "Uploading one checkpoint to the object store",
    buckets=(0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600),
    registry=REGISTRY,
)
TASKS = Counter(
    "ftaas_worker_tasks", "Celery tasks run, by task name and end state", ["task", "state"], registry=REGISTRY
)
TASK_SECONDS = Histogram(
    "ftaas_worker_task_duration_seconds",
    "Celery task run time, by task name",
    ["task"],
    buckets=(0.1, 1, 10, 60, 300, 900, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 48 * 3600),
    registry=REGISTRY,
)


@dataclass
class _Held:
    job_id: str
    attempt: int
    step: int = 0
    total_steps: int = 0
    first: tuple[float, int] | None = None  # (when, cumulative tokens) at this attempt's first step
    last_tokens: int | None = None
    tokens_per_second: float | None = None


_lock = threading.Lock()
_held: _Held | None = None
_identity: dict[str, str] = {}


class _HeldJobCollector(Collector):
    """The job held now, read when scraped: its series disappear as soon as the job is let go."""

    def collect(self) -> Iterator[Metric]:
        with _lock:
            held, identity = _held, dict(_identity)
        if identity:
            info = InfoMetricFamily("ftaas_worker", "This worker: its id, host and GPU classes")
            info.add_metric([], identity)
            yield info
        busy = GaugeMetricFamily("ftaas_worker_busy", "1 while this worker holds a job's lease")
        busy.add_metric([], int(held is not None))
        yield busy
        if held is None:
            return
        for name, doc, value in (
            ("ftaas_worker_held_job_attempt", "Attempt number of the held job", held.attempt),
            ("ftaas_worker_held_job_step", "Last step trained of the held job", held.step),
            ("ftaas_worker_held_job_total_steps", "Steps the held job trains in all", held.total_steps),
            ("ftaas_worker_held_job_tokens_per_second", "Tokens/s of the held job since its attempt's first step",
             held.tokens_per_second),
        ):
            if value is not None:
                family = GaugeMetricFamily(name, doc, labels=["job"])
                family.add_metric([held.job_id], value)
                yield family


REGISTRY.register(_HeldJobCollector())


@contextmanager
def holding(job_id: str, attempt: int) -> Iterator[None]:
    """While the worker holds a job's lease."""
    global _held
    ATTEMPTS.inc()
    with _lock:
        _held = _Held(job_id, attempt)
    try:
        yield
    finally:
        with _lock:
            _held = None


def stepped(step: int, total_steps: int, trained_tokens: int, *, at: float | None = None) -> None:
    """One optimizer step of the held job; ``trained_tokens`` is cumulative over the job, resumed attempts
    included, so only what this attempt added is counted (its first step's own tokens are not known)."""
    when = time.monotonic() if at is None else at
    with _lock:
        held = _held
        if held is None:
            return
        STEPS.inc()
        if held.last_tokens is not None:
            TOKENS.inc(max(0, trained_tokens - held.last_tokens))
        elif step == 1:
            TOKENS.inc(trained_tokens)
        held.step, held.total_steps, held.last_tokens = step, total_steps, trained_tokens
        if held.first is None:
            held.first = (when, trained_tokens)
        elif when > held.first[0]:
            held.tokens_per_second = (trained_tokens - held.first[1]) / (when - held.first[0])


def observe(on_step: Callable[[Any], None]) -> Callable[[Any], None]:
    """Wrap the training loop's step callback (it gets worker.training's StepMetrics)."""
    def wrapped(m: Any) -> None:
        stepped(m.step, m.total_steps, m.trained_tokens)
        on_step(m)

    return wrapped


_started: dict[str, float] = {}


def _task_started(task_id: str | None = None, **_: Any) -> None:
    if task_id:
        _started[task_id] = time.monotonic()


def _task_ended(task_id: str | None = None, task: Any = None, state: str | None = None, **_: Any) -> None:
    name = getattr(task, "name", None) or "unknown"
    TASKS.labels(name, state or "UNKNOWN").inc()
    began = _started.pop(task_id or "", None)
    if began is not None:
        TASK_SECONDS.labels(name).observe(time.monotonic() - began)


def serve(port: int, identity: dict[str, str], addr: str = "0.0.0.0") -> Any:
    """Start this process's metrics server (a daemon thread) and count its Celery tasks; returns the server."""
    disable_created_metrics()
    with _lock:
        _identity.update(identity)
    task_prerun.connect(_task_started, weak=False)
    task_postrun.connect(_task_ended, weak=False)
    server, _thread = start_http_server(port, addr=addr, registry=REGISTRY)
    return server
