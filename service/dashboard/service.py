"""Assemble the ops dashboard snapshot: broker queues, workers, recent jobs with their safety results, alignments."""

from __future__ import annotations

import logging
import time
from typing import Any

from sqlalchemy.orm import Session

from service.broker import WEBHOOKS_QUEUE, queue_for
from service.config import Settings
from service.dashboard import figures, inference, queues, repository
from service.dashboard.schemas import (
    Alignment,
    BaseModelSummary,
    Dashboard,
    Evaluation,
    Job,
    QueueDepth,
    Queues,
    Worker,
    WorkerJob,
)
from service.orm import AlignmentRow, BaseModelRow, FileScreenRow, JobRow, WorkerRow

log = logging.getLogger(__name__)

JOBS_SHOWN = 50
ALIGNMENTS_SHOWN = 20
WORKERS_SHOWN = 100
DAY = 24 * 3600
SAFETY_GATE_CODE = "safety_evaluation_failed"  # worker/fine_tuning/outcome.py: trained, evaluated, not deployed


def snapshot(
    session: Session, settings: Settings, *, org: str | None = None, status: str | None = None, model: str | None = None
) -> Dashboard:
    """Everything the provider watches, read in one transaction (plus one broker read); the recent jobs only of the
    org, status and base model asked for."""
    at = time.time()
    base_rows = repository.base_models(session)
    worker_rows = repository.workers(session, WORKERS_SHOWN)
    alignment_rows = repository.recent_alignments(session, ALIGNMENTS_SHOWN)
    gpu_classes = gpu_classes_of(base_rows, worker_rows, alignment_rows)
    workers = worker_states(session, settings, worker_rows, at)
    return Dashboard(
        generated_at=at,
        lease_seconds=settings.lease_seconds,
        queues=_queues(session, settings, queue_names(gpu_classes), workers),
        workers=workers,
        jobs=[job_summary(j, o) for j, o in repository.recent_jobs(session, JOBS_SHOWN, org=org, status=status,
                                                                     model=model)],  # fmt: skip
        alignments=[Alignment.from_row(r) for r in alignment_rows],
        base_models=[BaseModelSummary.from_row(r) for r in base_rows],
        screens_by_status=repository.count_by_status(session, FileScreenRow),
        inference=inference.backends(settings),
    )


def page_view(session: Session, settings: Settings, d: Dashboard, filters: dict[str, str | None]) -> dict[str, Any]:
    """What the HTML overview adds to the snapshot: its pictures, the filters in force and the choices they offer."""
    hs = [j.evaluation.hs for j in d.jobs if j.evaluation is not None and j.evaluation.hs is not None]
    return {
        "filters": filters,
        "choices": {
            "org": repository.org_names(session),
            "status": sorted(set(d.queues.jobs_by_status) | {"validating_files", "queued", "running", "succeeded",
                                                                "failed", "cancelled", "paused"}),
            "model": [b.name for b in d.base_models],
        },
        "charts": {
            "over_time": figures.jobs_over_time(repository.job_times(session, int(d.generated_at) - DAY, 5000),
                                                d.generated_at),  # fmt: skip
            "status": figures.jobs_by_status(d.queues.jobs_by_status),
            "queues": figures.queue_depths([(q.name, q.waiting) for q in d.queues.queues]),
            "hs": figures.hs_distribution(hs, settings.safety_max_hs),
        },
    }


def gpu_classes_of(
    base_rows: list[BaseModelRow], worker_rows: list[WorkerRow], alignment_rows: list[AlignmentRow]
) -> set[str]:
    """Every GPU class a base model, a worker or a waiting alignment names: the queues worth watching."""
    return (
        {r.gpu_class for r in base_rows}
        | {c for w in worker_rows for c in _classes(w.gpu_classes)}
        | {a.gpu_class for a in alignment_rows if a.status == "queued"}
    )


def queue_names(gpu_classes: set[str]) -> list[str]:
    """gpu.default, then the queue of every GPU class a base model, a worker or a waiting alignment names, then
    webhooks."""
    return [queue_for("default")] + [queue_for(c) for c in sorted(gpu_classes - {"default"})] + [WEBHOOKS_QUEUE]


def _queues(session: Session, settings: Settings, names: list[str], workers: list[Worker]) -> Queues:
    error = None
    try:
        counts: dict[str, int | None] = dict(queues.waiting(settings, names))
    except Exception as exc:  # the page must still show the DB side when the broker is down
        log.warning("could not read broker queue depths: %s", exc)
        counts, error = {}, f"{type(exc).__name__}: {exc}"
    return Queues(
        broker=queues.broker_kind(settings.broker_url),
        broker_error=error,
        queues=[QueueDepth(name=n, waiting=counts.get(n), live_workers=consumers(n, workers)) for n in names],
        jobs_by_status=repository.count_by_status(session, JobRow),
    )


def consumers(queue: str, workers: list[Worker]) -> int:
    """Every worker consumes the webhooks queue and the gpu.<class> queues of its classes."""
    return sum(w.alive and (queue == WEBHOOKS_QUEUE or queue in map(queue_for, w.gpu_classes)) for w in workers)


def _classes(gpu_classes: str) -> list[str]:
    return [c.strip() for c in gpu_classes.split(",") if c.strip()]


def worker_states(session: Session, settings: Settings, rows: list[WorkerRow], at: float) -> list[Worker]:
    running: dict[str, list[WorkerJob]] = {}
    for job_id, model, status, worker_id in repository.running_jobs(session):
        running.setdefault(worker_id or "", []).append(WorkerJob(id=job_id, model=model, status=status))
    return [
        Worker(
            id=w.id,
            hostname=w.hostname,
            gpu_classes=_classes(w.gpu_classes),
            pid=w.pid,
            started_at=w.started_at,
            last_seen_at=w.last_seen_at,
            last_seen_age_s=round(max(0.0, at - w.last_seen_at), 1),
            alive=at - w.last_seen_at <= 2 * settings.lease_seconds,
            current_task=w.current_task,
            jobs=running.get(w.id, []),
        )
        for w in rows
    ]


def job_summary(row: JobRow, org: str) -> Job:
    error = row.error or {}
    summary = row.evaluation
    return Job(
        id=row.id,
        org=org,
        model=row.model,
        status=row.status,
        created_at=row.created_at,
        finished_at=row.finished_at,
        trained_tokens=row.trained_tokens,
        worker_id=row.worker_id,
        error_code=error.get("code"),
        error_message=error.get("message"),
        evaluation=Evaluation(**{k: summary.get(k) for k in Evaluation.model_fields}) if summary else None,
        safety_gate_failed=error.get("code") == SAFETY_GATE_CODE,
    )
