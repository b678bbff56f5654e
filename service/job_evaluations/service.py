"""Re-running a finished job's evaluation (provider only): the same HS / FA / gate protocol as at the end of
training, run again on the job's published adapter with the provider's settings of today (judge, prompt count,
thresholds), e.g. after a judge upgrade.

    {"id": "jobeval_…", "object": "fine_tuning.job.evaluation", "job_id", "status": queued|running|succeeded|failed,
     "gpu_class", "attempts", "worker_id", "created_at", "started_at", "finished_at",
     "result": {"summary", "second_judge", "judge", "verdict", "passes_gate", "original", "report_key"} | null,
     "error": str | null}

A re-evaluation is evidence, not a decision: it never changes the job's status and never deploys or withdraws its
fine-tuned model. The gate decided once, when the job ended, under the settings of that day; silently taking a
model away from a customer's production calls (or putting a gate-failed one into them) because a judge changed
would be worse than showing the provider the new verdict on the job's page and event log.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from service.base_models import repository as base_models
from service.broker import enqueue_evaluation
from service.config import Settings
from service.errors import InvalidRequest, NotFound
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.job_evaluations import repository
from service.orm import EvaluationRow, JobRow

GATE_FAILED = "safety_evaluation_failed"  # worker/fine_tuning/outcome.py: the job trained, its adapter is stored


def has_adapter(job: JobRow) -> bool:
    """Whether the job published an adapter to evaluate: it succeeded, or it trained and the gate stopped it."""
    return job.status == "succeeded" or (job.status == "failed" and (job.error or {}).get("code") == GATE_FAILED)


def request(session: Session, settings: Settings, job_id: str) -> EvaluationRow:
    """Queue a re-evaluation of ``job_id`` on its base model's GPU class (published once the transaction commits)."""
    job = jobs.get(session, job_id)
    if job is None:
        raise NotFound(f"No such fine-tuning job: {job_id}", param="job_id")
    if not has_adapter(job):
        raise InvalidRequest(
            f"Job {job_id} is {job.status} without a trained adapter, so there is nothing to evaluate: only a "
            f"succeeded job, or one the safety gate stopped, can be evaluated again.",
            param="job_id",
            code="evaluation_not_available",
        )
    busy = repository.pending_for_job(session, job_id)
    if busy is not None:
        raise InvalidRequest(
            f"Re-evaluation {busy.id} of job {job_id} is already {busy.status}; wait for it to finish.",
            param="job_id",
            code="evaluation_in_progress",
        )
    base = base_models.get(session, job.model)
    if base is None:
        raise InvalidRequest(
            f"Job {job_id}'s base model {job.model} is no longer registered, so its adapter cannot be loaded.",
            param="job_id",
            code="model_not_available",
        )
    row = EvaluationRow(id=new_id("jobeval_"), job_id=job_id, gpu_class=base.gpu_class, status="queued")
    row.created_at, row.attempts = now(), 0
    repository.add(session, row)
    jobs.add_event(session, job_id, f"Evaluation re-run {row.id} requested by the provider")
    enqueue_evaluation(session, settings, row.id, base.gpu_class)
    return row


def list_for_job(session: Session, job_id: str) -> list[EvaluationRow]:
    if jobs.get(session, job_id) is None:
        raise NotFound(f"No such fine-tuning job: {job_id}", param="job_id")
    return repository.for_job(session, job_id)


def get(session: Session, job_id: str, evaluation_id: str) -> EvaluationRow:
    row = repository.get(session, evaluation_id)
    if row is None or row.job_id != job_id:
        raise NotFound(f"No such evaluation of job {job_id}: {evaluation_id}", param="evaluation_id")
    return row
