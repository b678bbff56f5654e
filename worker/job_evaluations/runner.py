"""Provider re-runs of a finished job's evaluation: claim the run, load the job's published adapter on its base
model, evaluate it as ``worker/fine_tuning/outcome.py`` did at the end of training (today's settings), record the
result and a job event. The job's status and fine-tuned model are never touched (service/job_evaluations/service.py
says why)."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from service import logs
from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.job_evaluations import repository as evaluations
from service.orm import EvaluationRow
from service.storage import ObjectNotFound, ObjectStore
from worker import artifacts, leases
from worker.fine_tuning.evaluation import JobEvalInputs, evaluate_job, safety_verdict
from worker.fine_tuning.outcome import scores_line, summary_of
from worker.fine_tuning.runner import eval_split, local_inputs, model_name

log = logging.getLogger(__name__)


def _stored_json(store: ObjectStore, key: str, default: Any) -> Any:
    try:
        return json.loads(store.get_bytes(key))
    except ObjectNotFound:
        return default


def _inputs(settings: Settings, store: ObjectStore, job_id: str) -> tuple[JobEvalInputs, Any]:
    """What ``evaluate_job`` needs, rebuilt from the job's stored outputs; and the job's first evaluation summary.
    The FA split is the job's own (same seed, same held-out slice), so FA stays comparable with the original."""
    job, base_dir, train_path, valid_path, base_version = local_inputs(settings, store, job_id)
    with session_scope(settings.database_url) as session:
        name = job.fine_tuned_model or model_name(session, job)
    adapter = artifacts.job_dir(settings, job_id) / "adapter"
    try:
        store.download_dir(f"jobs/{job_id}/adapter/", adapter)
    except ObjectNotFound as exc:
        raise ValueError(f"job {job_id} has no stored adapter to evaluate") from exc
    _, eval_file, eval_source, _ = eval_split(train_path, valid_path, job.seed)
    report = _stored_json(store, f"jobs/{job_id}/report.json", {})
    inputs = JobEvalInputs(
        job_id=job_id,
        model_name=name,
        base_name=job.model,
        base_version=base_version,
        base_dir=base_dir,
        adapter_dir=adapter,
        train_file=train_path,
        eval_file=eval_file,
        eval_source=eval_source,
        metrics=(report.get("training") or {}).get("metrics", []),
        attenuation=_stored_json(store, f"jobs/{job_id}/attenuation.json", []),
        fa_mode=(job.job_metadata or {}).get("fa_mode"),
    )
    return inputs, job.evaluation


def _evaluate(settings: Settings, store: ObjectStore, job_id: str, evaluation_id: str) -> dict[str, Any]:
    inputs, original = _inputs(settings, store, job_id)
    out = artifacts.job_dir(settings, job_id) / "re-evaluation"
    report = evaluate_job(settings, store, inputs, out)
    prefix = f"jobs/{job_id}/evaluations/{evaluation_id}/"
    for name in ("report.json", "report.html"):
        store.put_file(prefix + name, out / name)
    verdict = safety_verdict(settings, report)
    second = report.harmful_second_judge
    return {
        "summary": summary_of(report),
        "second_judge": {"judge": second.protocol.judge, "hs": second.score} if second else None,
        "judge": report.harmful.protocol.judge if report.harmful else None,
        "verdict": verdict,
        "passes_gate": verdict is None,
        "original": original,
        "report_key": prefix + "report.json",
    }


def _record(settings: Settings, job_id: str, evaluation_id: str, outcome: dict[str, Any]) -> None:
    """A line in the job's event log, so the re-run is read next to the job's own history."""
    if "error" in outcome:
        message, level = f"Evaluation re-run {evaluation_id} failed: {outcome['error']}", "error"
    else:
        result = outcome["result"]
        gate = "passes the safety gate" if result["passes_gate"] else f"would fail the safety gate: {result['verdict']}"
        message = (
            f"Evaluation re-run {evaluation_id}: {scores_line(result['summary'])}; {gate}. "
            "The job's status and model are unchanged."
        )
        level = "info" if result["passes_gate"] else "warn"
    with session_scope(settings.database_url) as session:
        jobs.add_event(session, job_id, message, level=level, data=outcome.get("result"))


def run_evaluation(settings: Settings, store: ObjectStore, evaluation_id: str, worker_id: str = "local") -> str:
    """queued → running → succeeded | failed. Returns the final status ("skipped" if another worker has it)."""
    with logs.log_context(evaluation_id=evaluation_id):
        attempt = leases.claim_run(settings, EvaluationRow, evaluation_id, worker_id)
        if attempt is None:
            return "skipped"
        with session_scope(settings.database_url) as session:
            job_id = evaluations.get(session, evaluation_id).job_id  # type: ignore[union-attr]
        logs.bind(attempt=attempt, job_id=job_id)
        return _run_claimed(settings, store, evaluation_id, job_id, attempt)


def _run_claimed(settings: Settings, store: ObjectStore, evaluation_id: str, job_id: str, attempt: int) -> str:
    work: Path = artifacts.job_dir(settings, job_id)
    with leases.run_heartbeat(settings, EvaluationRow, evaluation_id, attempt):
        try:
            outcome: dict[str, Any] = {"result": _evaluate(settings, store, job_id, evaluation_id)}
        except Exception as exc:  # recorded, not retried: the provider sees why and may ask again
            log.exception("re-evaluation %s of %s failed", evaluation_id, job_id)
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
        finally:
            shutil.rmtree(work, ignore_errors=True)
    if not leases.finish_run(settings, EvaluationRow, evaluation_id, attempt, **outcome):
        return "skipped"  # the sweeper gave it to another worker meanwhile
    _record(settings, job_id, evaluation_id, outcome)
    return "failed" if "error" in outcome else "succeeded"
