"""Job orchestration: validate → claim → Antibody training → outputs, translating between the DB/object store
and the pure training library. Every write after the claim is guarded by the lease token.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

from sqlalchemy.orm import Session

from service import logs
from service.auth import repository as orgs
from service.base_models import repository as base_models
from service.config import Settings
from service.db import session_scope
from service.files import repository as files
from service.fine_tuning import repository as jobs
from service.ids import now
from service.orm import BaseModelRow, JobRow
from service.storage import ObjectStore
from worker import artifacts
from worker import metrics as worker_metrics
from worker.datasets.safety_mix import mix_size, provider_refusals, write_safety_mix
from worker.fine_tuning import failures, integrations, scheduling
from worker.fine_tuning.evaluation import JobEvalInputs
from worker.fine_tuning.failures import JobFailed
from worker.fine_tuning.outcome import finish, owned, succeed
from worker.fine_tuning.reporter import Reporter
from worker.leases import Lease, LeaseLost, job_heartbeat, renew_job
from worker.training import TrainConfig, estimate, ranks, train
from worker.training.data import load_tokenizer, steps_per_epoch

log = logging.getLogger(__name__)


def _load(session: Session, job_id: str) -> tuple[JobRow, BaseModelRow | None]:
    job = jobs.get_one(session, job_id)
    return job, base_models.get(session, job.model)


def _file_key(session: Session, job: JobRow, param: str) -> str:
    file_id = getattr(job, param)
    row = files.get(session, job.org_id, file_id, include_expired=True)
    if row is None or row.object_key is None:
        raise JobFailed("invalid_file", f"{param} {file_id} no longer exists or has no content.", param)
    return row.object_key


def local_inputs(settings: Settings, store: ObjectStore, job_id: str) -> tuple[JobRow, Path, Path, Path | None, str]:
    """Download what training needs; returns (job, base model dir, train file, validation file, base version)."""
    with session_scope(settings.database_url) as session:
        job, base = _load(session, job_id)
        if base is None:
            raise JobFailed("model_not_available", f"Base model {job.model} is no longer registered.", "model")
        keys = {p: _file_key(session, job, p) for p in ("training_file", "validation_file") if getattr(job, p)}
        base_version = artifacts.base_model_version(base)
    work = artifacts.job_dir(settings, job_id)
    try:
        base_dir = artifacts.base_model_dir(settings, store, base)
    except artifacts.IncompleteUpload as exc:
        raise JobFailed("model_not_available", str(exc), "model") from exc
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
        job, base_dir, train_path, valid_path, _ = local_inputs(settings, store, job_id)
        hp = job.hyperparameters
        try:
            info = estimate(base_dir, train_path, settings.max_seq_len, hp["batch_size"], hp["n_epochs"])
            info |= _plan(settings, job, train_path, valid_path)
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
            f"tokens per epoch, {info['steps']} steps ({_plan_words(info)})",
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


def _plan(settings: Settings, job: JobRow, train_path: Path, valid_path: Path | None) -> dict[str, int]:
    """What training will really see, so the validated step count is the one the job then runs: the lines left
    after the FA hold-out (``eval_split``) plus the safety mix, in batches of ``batch_size`` for ``n_epochs``."""
    _, _, _, line_map = eval_split(train_path, valid_path, job.seed)
    n_mix = mix_size(len(line_map), settings.safety_mix_share)
    hp = job.hyperparameters
    steps = hp["n_epochs"] * steps_per_epoch(len(line_map) + n_mix, hp["batch_size"])
    return {"steps": steps, "trained_lines": len(line_map), "safety_mix": n_mix}


def _plan_words(info: dict) -> str:
    held_out = info["n_examples"] - info["trained_lines"]
    words = [f"{info['trained_lines']} lines trained"] + ([f"{held_out} held out for FA"] if held_out > 0 else [])
    mix = info["safety_mix"]
    return ", ".join(words) + (f" + {mix} safety-mix pair{'s' if mix != 1 else ''}" if mix else "")


def model_name(session: Session, job: JobRow) -> str:
    org = orgs.org_name(session, job.org_id)
    slug = "".join(c if c.isalnum() or c in "-_" else "-" for c in (org or job.org_id)).lower()
    return f"ft:{job.model}:{slug}:{job.suffix or ''}:{job.id}"


def run_job(settings: Settings, store: ObjectStore, job_id: str, worker_id: str) -> str:
    """Run one delivery of a job id; a duplicate or stale delivery does nothing. Returns what happened."""
    with logs.log_context(job_id=job_id):  # every line of this delivery names the job (and its attempt once claimed)
        return _run_job(settings, store, job_id, worker_id)


def _run_job(settings: Settings, store: ObjectStore, job_id: str, worker_id: str) -> str:
    # The message is only a wake-up: the fairest job of its GPU class across orgs is claimed (scheduling.py)
    lease = scheduling.claim_fair(settings, job_id, worker_id, lambda candidate: validate(settings, store, candidate))
    if lease is None:
        return "skipped"
    job_id = lease.job_id
    logs.bind(job_id=job_id, attempt=lease.attempt)
    try:
        with (
            job_heartbeat(settings, lease),
            worker_metrics.holding(job_id, lease.attempt),
            integrations.tracking(settings, lease) as tracker,
        ):
            return _train(settings, store, lease, tracker)
    except LeaseLost:
        log.warning("lost the lease on %s; another worker owns it now", job_id)
        return "lease-lost"
    except Exception as exc:
        log.exception("job %s failed", job_id)
        error = failures.error_for(exc, settings, job_id)
        finish(settings, lease, "failed", f"Fine-tuning job failed: {error['message']}", error=error)
        return "failed"


def _resume_point(settings: Settings, store: ObjectStore, lease: Lease) -> tuple[Path, int] | None:
    """The newest checkpoint that is complete in the store, downloaded: (local folder, step)."""
    with session_scope(settings.database_url) as session:
        rows = jobs.checkpoints_newest_first(session, lease.job_id)
    for prefix, step in rows:
        local = artifacts.download_checkpoint(store, prefix, artifacts.job_dir(settings, lease.job_id) / "resume")
        if local is not None:
            return local, step
    return None


def eval_split(train_path: Path, valid_path: Path | None, seed: int) -> tuple[Path, Path | None, str, list[int]]:
    """(file to train on, file to measure FA on, its source, training line → original line). FA needs data the
    model never trained on: without a validation file, hold a seeded slice of the training file out."""
    line_map = list(range(1, 1 + sum(1 for line in train_path.open(encoding="utf-8") if line.strip())))
    if valid_path is None:
        split = artifacts.split_holdout(train_path, seed=seed)
        if split is not None:
            held_in, held_out, line_map = split
            return held_in, held_out, "training_holdout", line_map
    return train_path, valid_path, "validation_file", line_map


def _train(settings: Settings, store: ObjectStore, lease: Lease, tracker: integrations.Tracker) -> str:
    job, base_dir, train_path, valid_path, base_version = local_inputs(settings, store, lease.job_id)
    hp = job.hyperparameters
    resume, resume_step = _resume_point(settings, store, lease) or (None, 0)
    with owned(settings, lease) as session:
        ft_name = model_name(session, job)
        jobs.add_event(
            session,
            job.id,
            (f"Resuming from checkpoint step-{resume_step} (attempt {lease.attempt})" if resume
             else "Fine-tuning job started") + (f" on {n} devices" if (n := settings.worker_gpus) > 1 else ""),
            data={"worker": job.worker_id, "attempt": lease.attempt, "resumed_from_step": resume_step,
                  "devices": settings.worker_gpus},  # fmt: skip
        )
    out = artifacts.job_dir(settings, job.id) / "out"
    shutil.rmtree(out, ignore_errors=True)
    original_train = train_path
    train_path, eval_file, eval_source, line_map = eval_split(train_path, valid_path, job.seed)
    mix_file = train_path.with_name("safety_mix.jsonl")
    n_mix = write_safety_mix(mix_file, len(line_map), settings.safety_mix_share, job.seed)
    if n_mix and not resume:
        with owned(settings, lease) as session:
            jobs.add_event(
                session,
                job.id,
                f"Safety mix: {n_mix} of the provider's refusal pairs train beside the file's {len(line_map)} lines "
                "(not billed, not in the attenuation report)",
                data={"safety_mix": n_mix},
            )
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
        init_adapter_dir=artifacts.parent_adapter_dir(settings, store, job),
        safety_mix_file=mix_file if n_mix else None,
    )
    reporter = Reporter(settings, store, lease, job, ft_name)
    stop = lambda: renew_job(settings, lease)  # noqa: E731  (the pending "cancel"/"pause", or LeaseLost)
    # W&B and the worker's metrics get every step; events every metrics_every
    on_step = worker_metrics.observe(tracker.observe(reporter.on_step))
    on_step = failures.with_fault_injection(settings, hp["batch_size"], on_step)
    with ranks.spread(cfg, settings.worker_gpus):  # this process is rank 0: it keeps the callbacks
        result = train(cfg, on_step=on_step, on_checkpoint=reporter.on_checkpoint, should_stop=stop)
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
            safety_mix=n_mix,
        )
        succeed(settings, store, lease, job, ft_name, result, evaluation)
    shutil.rmtree(artifacts.job_dir(settings, job.id), ignore_errors=True)
    return result.stopped or "succeeded"


def warm_up(settings: Settings, store: ObjectStore) -> None:
    """Load what the first job would otherwise pay for: the safety mix's pairs, tokenizers of local base models."""
    with session_scope(settings.database_url) as session:
        bases = base_models.list_all(session)
    if settings.safety_mix_share > 0:
        provider_refusals()
    for base in bases:
        try:
            local = Path(base.path)
            if not base.path.startswith(artifacts.STORE_SCHEME) and (local / "config.json").exists():
                load_tokenizer(local)
        except Exception:  # warm-up is an optimisation; a broken model fails its job with a clear error later
            log.warning("could not warm up base model %s", base.name, exc_info=True)
