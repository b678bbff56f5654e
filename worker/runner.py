"""Job orchestration: validate → claim → Antibody training → outputs, translating between the DB/object store
and the pure training library. Every write after the claim is guarded by the lease token.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.orm import BaseModelRow, CheckpointRow, FileRow, JobRow, OrgRow
from service.storage import ObjectStore
from worker import artifacts
from worker.job_evaluation import JobEvalInputs
from worker.lease import Lease, LeaseLost, claim, heartbeat, renew
from worker.outcome import finish, owned, succeed
from worker.training import StepMetrics, TrainConfig, estimate, train

log = logging.getLogger(__name__)


class JobFailed(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, "param": param}


def _load(session: Session, job_id: str) -> tuple[JobRow, BaseModelRow | None]:
    job = session.scalars(select(JobRow).where(JobRow.id == job_id)).one()
    return job, session.get(BaseModelRow, job.model)


def _file_key(session: Session, job: JobRow, param: str) -> str:
    file_id = getattr(job, param)
    row = session.scalar(select(FileRow).where(FileRow.id == file_id, FileRow.org_id == job.org_id))
    if row is None or row.object_key is None:
        raise JobFailed("invalid_file", f"{param} {file_id} no longer exists or has no content.", param)
    return row.object_key


def _local_inputs(
    settings: Settings, store: ObjectStore, job_id: str
) -> tuple[JobRow, Path, Path, Path | None, str]:
    """Download what training needs; returns (job, base model dir, train file, validation file, base version)."""
    with session_scope(settings.database_url) as session:
        job, base = _load(session, job_id)
        if base is None:
            raise JobFailed("model_not_available", f"Base model {job.model} is no longer registered.", "model")
        keys = {p: _file_key(session, job, p) for p in ("training_file", "validation_file") if getattr(job, p)}
        base_version = artifacts.base_model_version(base)
    work = artifacts.job_dir(settings, job_id)
    base_dir = artifacts.base_model_dir(settings, store, base)
    train_path = artifacts.fetch_file(store, keys["training_file"], work / "train.jsonl")
    valid_path = (
        artifacts.fetch_file(store, keys["validation_file"], work / "valid.jsonl")
        if "validation_file" in keys
        else None
    )
    return job, base_dir, train_path, valid_path, base_version


def validate(settings: Settings, store: ObjectStore, job_id: str) -> None:
    """validating_files → queued (token counts with the base model's tokenizer) or → failed naming the file."""
    try:
        job, base_dir, train_path, *_ = _local_inputs(settings, store, job_id)
        hp = job.hyperparameters
        try:
            info = estimate(base_dir, train_path, settings.max_seq_len, hp["batch_size"], hp["n_epochs"])
        except ValueError as exc:
            raise JobFailed("invalid_training_file", str(exc), "training_file") from exc
    except JobFailed as failed:
        with session_scope(settings.database_url) as session:
            if jobs.transition(session, job_id, ("validating_files",), "failed", error=failed.error, finished_at=now()):
                jobs.add_event(session, job_id, f"Validation failed: {failed.error['message']}", level="error")
        return
    with session_scope(settings.database_url) as session:
        if not jobs.transition(session, job_id, ("validating_files",), "queued"):
            return
        jobs.add_event(
            session,
            job_id,
            f"Files validated: {info['n_examples']} examples, {info['total_tokens']} "
            f"tokens per epoch, {info['steps']} steps",
            data=info,
        )
        if info["truncated"]:
            jobs.add_event(
                session,
                job_id,
                f"{info['truncated']} examples are longer than {settings.max_seq_len} tokens and will be truncated",
                level="warn",
            )
        jobs.add_event(session, job_id, "Fine-tuning job queued")


def _model_name(session: Session, job: JobRow) -> str:
    org = session.get(OrgRow, job.org_id)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in (org.name if org else job.org_id)).lower()
    return f"ft:{job.model}:{slug}:{job.suffix or ''}:{job.id}"


def process_job(settings: Settings, store: ObjectStore, job_id: str, worker_id: str) -> str:
    """Run one delivery of a job id; a duplicate or stale delivery does nothing. Returns what happened."""
    with session_scope(settings.database_url) as session:
        status = session.scalar(select(JobRow.status).where(JobRow.id == job_id))
    if status == "validating_files":
        validate(settings, store, job_id)
    lease = claim(settings, job_id, worker_id)
    if lease is None:
        return "skipped"
    try:
        with heartbeat(settings, lease):
            return _train(settings, store, lease)
    except LeaseLost:
        log.warning("lost the lease on %s; another worker owns it now", job_id)
        return "lease-lost"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        error = (
            exc.error
            if isinstance(exc, JobFailed)
            else {"code": "training_error", "param": None, "message": f"{type(exc).__name__}: {exc}"}
        )
        finish(settings, lease, "failed", f"Fine-tuning job failed: {error['message']}", error=error)
        return "failed"


def _resume_point(settings: Settings, store: ObjectStore, lease: Lease) -> tuple[Path, int] | None:
    """The newest checkpoint that is complete in the store, downloaded: (local folder, step)."""
    with session_scope(settings.database_url) as session:
        rows = session.execute(
            select(CheckpointRow.object_prefix, CheckpointRow.step_number)
            .where(CheckpointRow.job_id == lease.job_id)
            .order_by(CheckpointRow.step_number.desc())
        ).all()
    for prefix, step in rows:
        local = artifacts.download_checkpoint(store, prefix, artifacts.job_dir(settings, lease.job_id) / "resume")
        if local is not None:
            return local, step
    return None


def _train(settings: Settings, store: ObjectStore, lease: Lease) -> str:
    job, base_dir, train_path, valid_path, base_version = _local_inputs(settings, store, lease.job_id)
    hp = job.hyperparameters
    resume, resume_step = _resume_point(settings, store, lease) or (None, 0)
    with owned(settings, lease) as session:
        ft_name = _model_name(session, job)
        jobs.add_event(
            session,
            job.id,
            f"Resuming from checkpoint step-{resume_step} (attempt {lease.attempt})"
            if resume
            else "Fine-tuning job started",
            data={"worker": job.worker_id, "attempt": lease.attempt, "resumed_from_step": resume_step},
        )
    out = artifacts.job_dir(settings, job.id) / "out"
    shutil.rmtree(out, ignore_errors=True)
    original_train, eval_file, eval_source = train_path, valid_path, "validation_file"
    line_map = list(range(1, 1 + sum(1 for line in train_path.open(encoding="utf-8") if line.strip())))
    if valid_path is None:  # FA needs data the model never trained on: hold a seeded slice out
        split = artifacts.split_holdout(train_path, seed=job.seed)
        if split is not None:
            train_path, eval_file, line_map = split
            eval_source = "training_holdout"
    cfg = TrainConfig(
        base_model_dir=base_dir,
        train_file=train_path,
        validation_file=valid_path,
        output_dir=out,
        n_epochs=hp["n_epochs"],
        batch_size=hp["batch_size"],
        learning_rate_multiplier=hp["learning_rate_multiplier"],
        seed=job.seed,
        max_seq_len=settings.max_seq_len,
        checkpoint_every=settings.checkpoint_every,
        resume_from=resume,
    )
    last: dict[str, Any] = {}
    started = time.monotonic()

    def on_step(m: StepMetrics) -> None:
        last.update(m.row())
        if m.step % settings.metrics_every and m.step != m.total_steps:
            return
        eta = int(time.time() + (time.monotonic() - started) / max(1, m.step) * (m.total_steps - m.step))
        with owned(settings, lease) as session:
            jobs.add_event(
                session,
                job.id,
                f"Step {m.step}/{m.total_steps}: training loss={m.train_loss:.4f}",
                type="metrics",
                data={**m.row(), "total_steps": m.total_steps, "worker": job.worker_id},
            )
            session.execute(JobRow.__table__.update().where(JobRow.id == job.id).values(estimated_finish=eta))

    def on_checkpoint(step: int, path: Path) -> None:
        prefix = artifacts.upload_checkpoint(store, job.id, step, path)
        metrics = {
            k: last.get(k)
            for k in ("train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy")
        }
        with owned(settings, lease) as session:
            session.add(
                CheckpointRow(
                    id=new_id("ftckpt_"),
                    job_id=job.id,
                    step_number=step,
                    created_at=now(),
                    fine_tuned_model_checkpoint=f"{ft_name}:ckpt-step-{step}",
                    metrics=metrics,
                    object_prefix=prefix,
                )
            )
            jobs.add_event(session, job.id, f"Checkpoint saved at step {step}")

    result = train(cfg, on_step=on_step, on_checkpoint=on_checkpoint, should_stop=lambda: renew(settings, lease))
    if result.stopped == "cancel":
        finish(settings, lease, "cancelled", f"Fine-tuning job cancelled at step {result.steps}")
    elif result.stopped == "pause":
        finish(settings, lease, "paused", f"Fine-tuning job paused at step {result.steps} (checkpoint saved)")
    else:
        result.attenuation = [{**r, "line": line_map[r["line"] - 1]} for r in result.attenuation]
        evaluation = JobEvalInputs(
            job_id=job.id,
            model_name=ft_name,
            base_name=job.model,
            base_version=base_version,
            base_dir=base_dir,
            adapter_dir=result.adapter_dir,
            train_file=original_train,
            eval_file=eval_file,
            eval_source=eval_source,
            metrics=result.metrics,
            attenuation=result.attenuation,
            fa_mode=(job.job_metadata or {}).get("fa_mode"),
        )
        succeed(settings, store, lease, job, ft_name, result, evaluation)
    shutil.rmtree(artifacts.job_dir(settings, job.id), ignore_errors=True)
    return result.stopped or "succeeded"


def warm_up(settings: Settings, store: ObjectStore) -> None:
    """Load what the first job would otherwise pay for: tokenizers of locally available base models."""
    from worker.training.data import load_tokenizer

    with session_scope(settings.database_url) as session:
        bases = session.scalars(select(BaseModelRow)).all()
    for base in bases:
        try:
            local = Path(base.path)
            if not base.path.startswith(artifacts.STORE_SCHEME) and (local / "config.json").exists():
                load_tokenizer(local)
        except Exception:  # warm-up is an optimisation; a broken model fails its job with a clear error later
            log.warning("could not warm up base model %s", base.name, exc_info=True)
