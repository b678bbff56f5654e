"""A job's `integrations`: today W&B (`[{"type": "wandb", "wandb": {...}}]`), logged with the `wandb` library.

The run id is the job id, so a job resumed after a lost worker continues the same run (resume="allow"). W&B is a
side channel: any failure of it (server down, bad key, the library itself) becomes one `warn` job event and the run
is dropped; training never fails for it. `wandb` is imported only for a job that asked for it (the `wandb` extra).
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.orm import JobRow
from worker.fine_tuning.outcome import owned
from worker.leases import Lease, LeaseLost
from worker.training import StepMetrics

log = logging.getLogger(__name__)

StepCallback = Callable[[StepMetrics], None]
MAX_TAG = 64  # W&B refuses longer tags
SUMMARY = ("status", "fine_tuned_model", "trained_tokens")  # beside the HS/FA evaluation summary


def wandb_dir(settings: Settings) -> Path:
    """Where runs are written (WANDB_DIR): under FTAAS_HOME, not the job's work dir, which is removed after the job,
    so offline runs stay there for `wandb sync`."""
    return (settings.home / "wandb").resolve()


def _library_env(settings: Settings) -> None:
    # wandb otherwise keeps its settings and caches under the worker user's ~/.config and ~/.cache; an operator's
    # own WANDB_* values win. The key and URL are passed per run instead, so no child process inherits the key
    root = wandb_dir(settings)
    for sub in ("config", "cache", "data", "artifact"):
        os.environ.setdefault(f"WANDB_{sub.upper()}_DIR", str(root / sub))
    os.environ.setdefault("WANDB_DIR", str(root))
    os.environ.setdefault("WANDB_SILENT", "true")


def run_settings(settings: Settings) -> dict[str, Any]:
    """`wandb.Settings` for a job's run: the provider's server, bounded waits, and nothing about the worker machine
    (code, git, host, packages, system metrics) sent to the customer's project."""
    values: dict[str, Any] = {
        "silent": True,
        "console": "off",
        "init_timeout": settings.wandb_timeout_s,
        "finish_timeout": settings.wandb_timeout_s,
        "finish_timeout_raises": True,
        "save_code": False,
        "disable_code": True,
        "disable_git": True,
        "x_disable_meta": True,
        "x_disable_stats": True,
        "x_disable_machine_info": True,
        "x_save_requirements": False,
        "host": "ftaas-worker",
    }
    if settings.wandb_base_url:
        values["base_url"] = settings.wandb_base_url
    if settings.wandb_api_key is not None and settings.wandb_api_key.get_secret_value():
        values["api_key"] = settings.wandb_api_key.get_secret_value()
    if "WANDB_MODE" not in os.environ:  # wandb's own variable, as W&B documents it, beats the FTAAS_ setting
        values["mode"] = settings.wandb_mode
    return values


def init_kwargs(job: JobRow, spec: dict[str, Any]) -> dict[str, Any]:
    """wandb.init's arguments for `job`: the customer's project/name/entity/tags, and what the job trains with."""
    tags = [*(spec.get("tags") or []), "ftaas/finetune", f"ftaas/{job.model}", f"ftaas/{job.id}"]
    return {
        "project": spec["project"],
        "entity": spec.get("entity"),
        "name": spec.get("name") or job.id,  # as OpenAI does
        "tags": list(dict.fromkeys(t[:MAX_TAG] for t in tags)),
        "id": job.id,
        "resume": "allow",
        "config": {
            "model": job.model,
            **(job.hyperparameters or {}),
            "seed": job.seed,
            "training_file": job.training_file,
            "validation_file": job.validation_file,
            "suffix": job.suffix,
            "job_id": job.id,
        },
    }


def wandb_spec(job: JobRow) -> dict[str, Any] | None:
    return next((i["wandb"] for i in job.integrations or [] if i.get("type") == "wandb"), None)


class Tracker:
    """No integration: every call does nothing."""

    def observe(self, on_step: StepCallback) -> StepCallback:
        return on_step

    def finish(self, job: JobRow | None, exit_code: int) -> None:
        pass


class WandbTracker(Tracker):
    def __init__(self, settings: Settings, job: JobRow, warn: Callable[[str], None]) -> None:
        self.settings, self.job, self.warn = settings, job, warn
        self.run: Any = None
        self.secret = settings.wandb_api_key.get_secret_value() if settings.wandb_api_key else ""

    def start(self, spec: dict[str, Any]) -> None:
        try:
            _library_env(self.settings)
            import wandb  # only jobs with the integration pay for (and need) the library

            root = Path(os.environ["WANDB_DIR"])
            root.mkdir(parents=True, exist_ok=True)
            self.run = wandb.init(
                dir=str(root),
                settings=wandb.Settings(**run_settings(self.settings)),
                **init_kwargs(self.job, spec),
            )
        except Exception as exc:
            self._stop(exc, finish=False)

    def observe(self, on_step: StepCallback) -> StepCallback:
        def logged(m: StepMetrics) -> None:
            self.log(m.step, m.row())
            on_step(m)

        return logged

    def log(self, step: int, metrics: dict[str, Any]) -> None:
        if self.run is None:
            return
        try:
            self.run.log({k: v for k, v in metrics.items() if v is not None}, step=step)
        except Exception as exc:
            self._stop(exc)

    def finish(self, job: JobRow | None, exit_code: int) -> None:
        """The job's final state (HS/FA summary, status) into the run's summary, then end the run."""
        if self.run is None:
            return
        try:
            if job is not None:
                values = {**(job.evaluation or {}), **{k: getattr(job, k) for k in SUMMARY}}
                self.run.summary.update({k: v for k, v in values.items() if v is not None})
        except Exception as exc:
            self._stop(exc)  # and finishes the run with exit code 1
            return
        run, self.run = self.run, None
        try:
            run.finish(exit_code=exit_code)
        except Exception as exc:  # finish_timeout: the rest stays on disk for `wandb sync`
            self.run = run
            self._stop(exc, finish=False)

    def _stop(self, exc: Exception, finish: bool = True) -> None:
        reason = f"{type(exc).__name__}: {exc}"
        if isinstance(exc, ImportError):
            reason = f"the wandb library is not installed on this worker (the `wandb` extra): {reason}"
        if self.secret:
            reason = reason.replace(self.secret, "***")
        log.warning("W&B logging for job %s stopped: %s", self.job.id, reason)
        run, self.run = self.run, None
        if finish and run is not None:
            try:  # ends the library's side of the run; bounded by finish_timeout
                run.finish(exit_code=1)
            except Exception:
                log.debug("could not finish the W&B run of %s", self.job.id, exc_info=True)
        self.warn(f"W&B logging stopped: {reason[:500]}. The job goes on without it.")


def _warn(settings: Settings, lease: Lease, message: str) -> None:
    try:
        with owned(settings, lease) as session:
            jobs.add_event(session, lease.job_id, message, level="warn")
    except LeaseLost:
        pass  # another worker owns the job now; its own tracker reports for it


def _final_job(settings: Settings, job_id: str) -> JobRow:
    with session_scope(settings.database_url) as session:
        job = jobs.get_one(session, job_id)
        session.expunge(job)
        return job


@contextmanager
def tracking(settings: Settings, lease: Lease) -> Iterator[Tracker]:
    """The job's tracker for one delivery: started before training, finished however the delivery ends (exit code 1
    when the job failed or the delivery raised; a lost lease or a pause ends it cleanly, to be resumed)."""
    job = _final_job(settings, lease.job_id)
    spec = wandb_spec(job)
    if spec is None:
        yield Tracker()
        return
    tracker = WandbTracker(settings, job, lambda message: _warn(settings, lease, message))
    tracker.start(spec)
    try:
        yield tracker
    except LeaseLost:
        tracker.finish(None, 0)
        raise
    except BaseException:
        tracker.finish(None, 1)
        raise
    final = _final_job(settings, lease.job_id)
    tracker.finish(final, 1 if final.status == "failed" else 0)
