"""The provider's page for one job of any org: what happened to it, how it trained, whether it is safe to deploy,
and which training lines Antibody starved. Read-only, except for the provider's cancel and evaluation re-runs."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from markupsafe import Markup
from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.config import Settings
from service.dashboard import figures, repository
from service.dashboard.service import SAFETY_GATE_CODE
from service.errors import NotFound
from service.files import repository as files
from service.fine_tuning import service as fine_tuning
from service.fine_tuning.report_schema import DownWeightedLine, EvalReport
from service.job_evaluations import repository as job_evaluations
from service.job_evaluations import service as re_evaluation
from service.orm import CheckpointRow, EvaluationRow, FileScreenRow, JobEventRow, JobRow
from service.storage import ObjectNotFound, ObjectStore

EVENTS_READ = 5000  # a job logs a metrics event every metrics_every steps; the curves need them all
SORTS: dict[str, tuple[str, bool]] = {  # ?sort= of the attenuated lines table: (field, descending)
    "weight": ("mean_weight", False),
    "-weight": ("mean_weight", True),
    "line": ("line", False),
    "-line": ("line", True),
    "seen": ("times_seen", True),
}


@dataclass
class Gate:
    verdict: str  # "stopped" | "passed" | "pending"
    reason: str


@dataclass
class JobPage:
    job: JobRow
    org: str
    events: list[JobEventRow]  # message events, oldest first (metrics events feed the charts instead)
    checkpoints: list[CheckpointRow]
    report: EvalReport | None
    report_problem: str | None  # why there is no report to show
    screen: FileScreenRow | None
    gate: Gate
    lines: list[DownWeightedLine]
    sort: str
    metrics_source: str  # "report" (every step) or "events" (every metrics_every steps, while it runs)
    evaluations: list[EvaluationRow] = field(default_factory=list)  # the provider's re-runs, newest first
    charts: dict[str, Markup] = field(default_factory=dict)

    @property
    def cancellable(self) -> bool:
        return self.job.status in ("validating_files", "queued", "paused", "running") and self.job.control is None

    @property
    def evaluating(self) -> bool:
        return any(e.status in job_evaluations.PENDING for e in self.evaluations)

    @property
    def evaluable(self) -> bool:
        return re_evaluation.has_adapter(self.job) and not self.evaluating


def _find(session: Session, job_id: str) -> tuple[JobRow, str]:
    found = repository.job_with_org(session, job_id)
    if found is None:
        raise NotFound(f"Could not find fine-tuning job {job_id}.", param="fine_tuning_job_id")
    return found


def _report(store: ObjectStore, job: JobRow) -> tuple[EvalReport | None, str | None]:
    try:
        raw = store.get_bytes(f"jobs/{job.id}/report.json")
    except ObjectNotFound:
        return None, f"No evaluation report yet: the job is {job.status}."
    try:
        return EvalReport.model_validate(json.loads(raw)), None
    except (ValueError, ValidationError) as exc:  # an older or damaged report must not take the page down
        return None, f"report.json could not be read ({type(exc).__name__}); download it below."


def gate(settings: Settings, job: JobRow, report: EvalReport | None) -> Gate:
    """The safety gate's verdict as the worker recorded it; the limits quoted are this server's settings."""
    error = job.error or {}
    if error.get("code") == SAFETY_GATE_CODE:
        return Gate("stopped", str(error.get("message") or "the harmful score failed the provider's limits"))
    if job.status != "succeeded" or report is None or report.harmful is None:
        return Gate("pending", f"Not evaluated: the job is {job.status}.")
    limits = [f"HS ≤ {settings.safety_max_hs:g}%"] if settings.safety_max_hs is not None else []
    if settings.safety_max_hs_increase is not None:
        limits.append(f"HS at most {settings.safety_max_hs_increase:g} points above the base's")
    hs = f"HS {report.harmful.score:.1f}%"
    if not limits:
        return Gate("passed", f"{hs}; no limit is set (FTAAS_SAFETY_MAX_HS, FTAAS_SAFETY_MAX_HS_INCREASE), so "
                              "every evaluated job is deployed.")  # fmt: skip
    return Gate("passed", f"{hs} is within the limits ({'; '.join(limits)}).")


def sorted_lines(report: EvalReport | None, sort: str) -> list[DownWeightedLine]:
    lines = list(report.attenuation.most_down_weighted) if report and report.attenuation else []
    key, descending = SORTS.get(sort, SORTS["weight"])
    return sorted(lines, key=lambda line: (getattr(line, key), line.line), reverse=descending)


def _screen(session: Session, job: JobRow) -> FileScreenRow | None:
    """The training file's pre-screen on this job's base model, else its latest on any base."""
    return files.get_screen(session, job.training_file, job.model) or files.latest_screen(session, job.training_file)


def job_page(session: Session, store: ObjectStore, settings: Settings, job_id: str, sort: str = "weight") -> JobPage:
    job, org = _find(session, job_id)
    events = repository.job_events(session, job.id, EVENTS_READ)
    report, problem = _report(store, job)
    metrics: list[dict[str, Any]] = [e.data for e in events if e.type == "metrics" and isinstance(e.data, dict)]
    source = "events"
    if report is not None and report.training is not None and report.training.metrics:
        metrics, source = list(report.training.metrics), "report"
    messages = [e for e in events if e.type != "metrics"]
    page = JobPage(
        job=job,
        org=org,
        events=messages,
        checkpoints=repository.job_checkpoints(session, job.id),
        report=report,
        report_problem=problem,
        screen=_screen(session, job),
        gate=gate(settings, job, report),
        lines=sorted_lines(report, sort),
        sort=sort if sort in SORTS else "weight",
        metrics_source=source,
        evaluations=job_evaluations.for_job(session, job.id),
    )
    page.charts = {
        "timeline": figures.status_timeline([(e.created_at, e.message, e.level) for e in messages]),
        "loss": figures.loss_curves(metrics),
        "weights": figures.batch_weights(metrics),
        "negative": figures.negative_ratio(metrics),
        "histogram": figures.weight_histogram(report),
        "scores": figures.scores(report),
    }
    return page


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    rest = b""
    for chunk in chunks:
        rest += chunk
        *whole, rest = rest.split(b"\n")
        yield from whole
    if rest:
        yield rest


def raw_line(session: Session, store: ObjectStore, job_id: str, number: int) -> bytes:
    """Line ``number`` (1-based, as the attenuation report counts) of the job's training file, as uploaded."""
    job, _ = _find(session, job_id)
    row = files.get(session, job.org_id, job.training_file, include_expired=True)
    if row is None or row.object_key is None:
        raise NotFound(f"The training file {job.training_file} of job {job.id} is gone.", param="line")
    for n, line in enumerate(_lines(store.iter_chunks(row.object_key)), start=1):
        if n == number:
            return line.rstrip(b"\r")
    raise NotFound(f"The training file {job.training_file} has no line {number}.", param="line")


def report_file(
    session: Session, store: ObjectStore, job_id: str, name: str, evaluation_id: str | None = None
) -> bytes:
    """The job's own report, or with ``evaluation_id`` the report of one of its re-evaluations."""
    job, _ = _find(session, job_id)
    if evaluation_id is not None:
        run = re_evaluation.get(session, job.id, evaluation_id)
        try:
            return store.get_bytes(f"jobs/{job.id}/evaluations/{run.id}/{name}")
        except ObjectNotFound:
            raise NotFound(f"Re-evaluation {run.id} has no {name} (it is {run.status}).", param="name") from None
    try:
        return store.get_bytes(f"jobs/{job.id}/{name}")
    except ObjectNotFound:
        raise NotFound(f"Job {job.id} has no {name} yet (it is {job.status}).", param="name") from None


def evaluate(session: Session, settings: Settings, job_id: str) -> EvaluationRow:
    """Queue a re-run of the job's evaluation (service/job_evaluations/service.py), on the provider's authority."""
    job, _ = _find(session, job_id)
    return re_evaluation.request(session, settings, job.id)


def cancel(session: Session, settings: Settings, job_id: str) -> JobRow:
    """Cancel as its org would (the same transitions, events and webhook), on the provider's authority."""
    job, org = _find(session, job_id)
    return fine_tuning.cancel(session, settings, Principal(org_id=job.org_id, org_name=org, is_admin=True), job.id)
