"""What the database (and the broker) know, as Prometheus metrics read at scrape time.

A scrape costs a handful of grouped counts and one read of the newest ``metrics_recent_jobs`` (500) jobs, and the
answer is kept for ``metrics_cache_s`` (5 s), so many scrapers (or one scraping fast) never add DB load beyond that.
Distributions over recent jobs are gauge histograms: they describe a sliding window, so they go down as well as up
and must not be read with ``rate()`` (``histogram_quantile`` over the buckets is the way to read them).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeHistogramMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy.orm import Session

from service.config import Settings
from service.dashboard import queues
from service.dashboard import repository as dashboard
from service.dashboard import service as dashboard_service
from service.db import session_scope
from service.metrics import repository
from service.orm import AlignmentRow, EvaluationRow, FileScreenRow

log = logging.getLogger(__name__)

WORKERS = dashboard_service.WORKERS_SHOWN
SAFETY_GATE_CODE = dashboard_service.SAFETY_GATE_CODE
SECONDS_BUCKETS = (10, 30, 60, 120, 300, 600, 1800, 3600, 2 * 3600, 6 * 3600, 12 * 3600, 24 * 3600, 48 * 3600)
TOKENS_PER_S_BUCKETS = (10, 30, 100, 300, 1000, 3000, 10_000, 30_000, 100_000)
RATIO_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)


def gauge_histogram(name: str, doc: str, values: Sequence[float], bounds: Sequence[float]) -> Metric:
    """Cumulative buckets (le) over ``values``, ending with +Inf, and their sum."""
    buckets = [(str(float(b)), sum(v <= b for v in values)) for b in bounds]
    buckets.append(("+Inf", len(values)))
    return GaugeHistogramMetricFamily(name, doc, buckets=buckets, gsum_value=float(sum(values)))


def _job_distributions(rows: Iterable[Any], window: int) -> list[Metric]:
    queued, run, rates, hs, fa = [], [], [], [], []
    for status, created, started, finished, tokens, evaluation in rows:
        if started is not None:
            queued.append(max(0, started - created))
            if finished is not None:
                run.append(max(0, finished - started))
                if status == "succeeded" and tokens and finished > started:
                    rates.append(tokens / (finished - started))
        summary = evaluation or {}
        if summary.get("hs") is not None:
            hs.append(summary["hs"] / 100)
        if summary.get("fa") is not None:
            fa.append(summary["fa"] / 100)
    over = f"over the newest {window} jobs"
    return [
        gauge_histogram("ftaas_job_queue_seconds", f"Create to first training start {over}", queued, SECONDS_BUCKETS),
        gauge_histogram(
            "ftaas_job_run_seconds", f"First training start to finish (evaluation included), {over}", run,
            SECONDS_BUCKETS,
        ),
        gauge_histogram(
            "ftaas_job_training_tokens_per_second", f"Succeeded jobs' trained tokens / run time, {over}", rates,
            TOKENS_PER_S_BUCKETS,
        ),
        gauge_histogram("ftaas_job_eval_harmful_score_ratio", f"Evaluated jobs' HS (0-1), {over}", hs, RATIO_BUCKETS),
        gauge_histogram(
            "ftaas_job_eval_accuracy_ratio", f"Evaluated jobs' fine-tuning accuracy FA (0-1), {over}", fa,
            RATIO_BUCKETS,
        ),
    ]


def _counts(session: Session) -> list[Metric]:
    jobs = GaugeMetricFamily("ftaas_jobs", "Fine-tuning jobs by status and org", labels=["status", "org"])
    for status, org, n in repository.jobs_by_status_and_org(session):
        jobs.add_metric([status, org], n)
    screens = GaugeMetricFamily("ftaas_screens", "File pre-screens by status", labels=["status"])
    for status, n in sorted(dashboard.count_by_status(session, FileScreenRow).items()):
        screens.add_metric([status], n)
    alignments = GaugeMetricFamily("ftaas_alignments", "Base-model alignment runs by status", labels=["status"])
    for status, n in sorted(dashboard.count_by_status(session, AlignmentRow).items()):
        alignments.add_metric([status], n)
    reruns = GaugeMetricFamily(
        "ftaas_job_evaluations", "Provider re-runs of job evaluations by status", labels=["status"]
    )
    for status, n in sorted(dashboard.count_by_status(session, EvaluationRow).items()):
        reruns.add_metric([status], n)
    gate = CounterMetricFamily(
        "ftaas_safety_gate_failures", "Jobs trained and evaluated but not deployed (safety gate)", labels=["model"]
    )
    for model, n in repository.failures_by_code_and_model(session, SAFETY_GATE_CODE):
        gate.add_metric([model], n)
    return [jobs, screens, alignments, reruns, gate]


def _workers_and_queues(session: Session, settings: Settings, at: float) -> list[Metric]:
    rows = dashboard.workers(session, WORKERS)
    workers = dashboard_service.worker_states(session, settings, rows, at)
    age = GaugeMetricFamily("ftaas_worker_heartbeat_age_seconds", "Since a worker's last heartbeat", labels=["worker"])
    up = GaugeMetricFamily("ftaas_worker_up", "1 if seen within 2 x lease_seconds", labels=["worker"])
    held = GaugeMetricFamily("ftaas_worker_job", "1 per running job, on its worker", labels=["worker", "job"])
    for w in workers:
        age.add_metric([w.id], w.last_seen_age_s)
        up.add_metric([w.id], int(w.alive))
        for job in w.jobs:
            held.add_metric([w.id, job.id], 1)
    classes = dashboard_service.gpu_classes_of(
        dashboard.base_models(session), rows, dashboard.recent_alignments(session, dashboard_service.ALIGNMENTS_SHOWN)
    )
    names = dashboard_service.queue_names(classes)
    broker_up = GaugeMetricFamily("ftaas_broker_up", "1 if the broker's queue depths could be read")
    waiting = GaugeMetricFamily("ftaas_queue_waiting_messages", "Task messages no worker took yet", labels=["queue"])
    live = GaugeMetricFamily("ftaas_queue_live_workers", "Live workers consuming a queue", labels=["queue"])
    try:
        depths = queues.waiting(settings, names)
        broker_up.add_metric([], 1)
    except Exception as exc:  # DB-side metrics still matter most when the broker is down
        log.warning("metrics: could not read broker queue depths: %s", exc)
        depths = {}
        broker_up.add_metric([], 0)
    for name in names:
        if name in depths:
            waiting.add_metric([name], depths[name])
        live.add_metric([name], dashboard_service.consumers(name, workers))
    return [age, up, held, broker_up, waiting, live]


class DatabaseCollector(Collector):
    """Reads everything at most once per ``metrics_cache_s``; concurrent scrapes wait for the one reading."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._cached: list[Metric] = []
        self._read_at = float("-inf")

    def describe(self) -> list[Metric]:
        return []  # no DB read when the registry is built; names are checked by the tests instead

    def collect(self) -> list[Metric]:
        with self._lock:
            if time.monotonic() - self._read_at >= self.settings.metrics_cache_s:
                self._cached = self._read()
                self._read_at = time.monotonic()
            return self._cached

    def _read(self) -> list[Metric]:
        began = time.perf_counter()
        ok = GaugeMetricFamily("ftaas_metrics_db_up", "1 if the last read of the DB-derived metrics succeeded")
        try:
            with session_scope(self.settings.database_url) as session:
                metrics = _counts(session)
                metrics += _workers_and_queues(session, self.settings, time.time())
                recent = repository.recent_job_timings(session, self.settings.metrics_recent_jobs)
                metrics += _job_distributions(recent, self.settings.metrics_recent_jobs)
            ok.add_metric([], 1)
        except Exception:  # /metrics must answer while the DB is down: that is when it is looked at
            log.exception("metrics: could not read the database")
            metrics = []
            ok.add_metric([], 0)
        took = GaugeMetricFamily("ftaas_metrics_db_read_seconds", "How long the last DB-derived read took")
        took.add_metric([], time.perf_counter() - began)
        return [*metrics, ok, took]
