"""How a job ends: evaluation, the safety gate, published artifacts, the final transition and webhooks.
Every write is guarded by the job's lease token."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy.orm import Session

from service.config import Settings
from service.db import session_scope
from service.files import repository as files
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.models import repository as models
from service.orm import FileRow, FineTunedModelRow, JobRow
from service.storage import ObjectStore
from service.webhooks.delivery import notify_job_outcome
from worker import artifacts
from worker.fine_tuning.evaluation import JobEvalInputs, evaluate_job, safety_verdict
from worker.leases import Lease, LeaseLost, renew_job

log = logging.getLogger(__name__)


@contextmanager
def owned(settings: Settings, lease: Lease) -> Iterator[Session]:
    """A transaction that commits only while we still hold the job's lease."""
    with session_scope(settings.database_url) as session:
        if not jobs.holds_lease(session, lease.job_id, lease.token):
            raise LeaseLost(lease.job_id)
        yield session


def _result_file(session: Session, store: ObjectStore, org_id: str, filename: str, data: bytes) -> str:
    """Store `data` as a `fine-tune-results` file the customer can fetch with files.content."""
    file_id = new_id("file-")
    key = f"files/{file_id}.{filename.rsplit('.', 1)[-1]}"
    store.put_bytes(key, data)
    files.add(
        session,
        FileRow(
            id=file_id,
            org_id=org_id,
            filename=filename,
            purpose="fine-tune-results",
            bytes=len(data),
            status="processed",
            object_key=key,
            created_at=now(),
        ),
    )
    return file_id


def summary_of(report: Any) -> dict[str, Any]:
    hs, fa = report.harmful, report.accuracy
    return {
        "hs": hs.score if hs else None,
        "base_hs": hs.base.score if hs and hs.base else None,
        "fa": fa.accuracy if fa else None,
        "base_fa": fa.base.accuracy if fa and fa.base else None,
        "attenuated_fraction": report.attenuation.attenuated_fraction if report.attenuation else None,
    }


def scores_line(summary: dict[str, Any]) -> str:
    """'HS 1.0% (base 2.0%), FA 50.0% (base 25.0%)' for an event; 'no FA' when there was no held-out data."""
    pct = lambda v: "–" if v is None else f"{v}%"  # noqa: E731
    fa = f"FA {pct(summary['fa'])} (base {pct(summary['base_fa'])})"
    if summary["fa"] is None:
        fa = "no FA (no held-out data)"
    return f"HS {pct(summary['hs'])} (base {pct(summary['base_hs'])}), {fa}"


def succeed(
    settings: Settings,
    store: ObjectStore,
    lease: Lease,
    job: JobRow,
    ft_name: str,
    result: Any,
    evaluation: JobEvalInputs,
) -> None:
    """Publish the adapter, evaluate it, and either deploy it (succeeded) or stop it at the safety gate."""
    assert result.adapter_dir is not None
    renew_job(settings, lease)  # LeaseLost: a newer attempt may have deployed this adapter; don't overwrite it
    prefix = artifacts.upload_outputs(store, job.id, result.adapter_dir, None)
    store.put_bytes(f"jobs/{job.id}/attenuation.json", json.dumps(result.attenuation).encode())
    with owned(settings, lease) as session:
        jobs.add_event(session, job.id, "Evaluating: harmful score on held-out prompts and accuracy on held-out data")
    report_dir = artifacts.job_dir(settings, job.id) / "report"
    report = evaluate_job(settings, store, evaluation, report_dir)
    for name in ("report.json", "report.html"):
        store.put_file(f"jobs/{job.id}/{name}", report_dir / name)
    verdict = safety_verdict(settings, report)
    with owned(settings, lease) as session:
        files = [
            _result_file(session, store, job.org_id, "step_metrics.csv", artifacts.results_csv(result.metrics)),
            _result_file(session, store, job.org_id, "report.json", (report_dir / "report.json").read_bytes()),
            _result_file(session, store, job.org_id, "report.html", (report_dir / "report.html").read_bytes()),
        ]
        summary = summary_of(report)
        jobs.add_event(
            session,
            job.id,
            f"Evaluation: {scores_line(summary)}",
            data=summary,
        )
        if verdict is None:
            models.add(
                session,
                FineTunedModelRow(
                    id=ft_name,
                    org_id=job.org_id,
                    job_id=job.id,
                    base_model=job.model,
                    adapter_prefix=prefix,
                    created_at=now(),
                ),
            )
            jobs.add_event(session, job.id, f"New fine-tuned model created: {ft_name}")
    if verdict is not None:
        message = f"Safety evaluation failed: {verdict}. The model is not deployed; see the report (file {files[1]})."
        finish(
            settings,
            lease,
            "failed",
            message,
            result_files=files,
            trained_tokens=result.trained_tokens,
            evaluation=summary,
            error={"code": "safety_evaluation_failed", "param": None, "message": message},
        )
        return
    finish(
        settings,
        lease,
        "succeeded",
        "The job has successfully completed",
        fine_tuned_model=ft_name,
        result_files=files,
        trained_tokens=result.trained_tokens,
        evaluation=summary,
    )


def finish(settings: Settings, lease: Lease, status: str, message: str, **values: Any) -> None:
    terminal = status in jobs.TERMINAL
    with session_scope(settings.database_url) as session:
        moved = jobs.transition(
            session,
            lease.job_id,
            ("running",),
            status,
            lease_token=lease.token,
            control=None,
            lease_expires_at=None,
            finished_at=now() if terminal else None,
            estimated_finish=None,
            **values,
        )
        if not moved:
            raise LeaseLost(lease.job_id)
        jobs.add_event(session, lease.job_id, message, level="error" if status == "failed" else "info")
    if terminal:
        _notify(settings, lease.job_id, status)


def _notify(settings: Settings, job_id: str, status: str) -> None:
    try:
        with session_scope(settings.database_url) as session:
            notify_job_outcome(session, settings, job_id, status)
    except Exception:  # a webhook problem must never change a job's outcome
        log.exception("webhook notification for %s failed", job_id)
