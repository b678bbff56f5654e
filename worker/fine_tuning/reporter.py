"""The fine-tuning loop's callbacks inside a worker: metrics events (with an ETA) and uploaded, recorded
checkpoints."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from service.config import Settings
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.orm import CheckpointRow, JobRow
from service.storage import ObjectStore
from worker import artifacts
from worker import metrics as worker_metrics
from worker.fine_tuning.outcome import owned
from worker.leases import Lease
from worker.training import StepMetrics


class Reporter:
    """The training loop's callbacks: metrics events (with an ETA) and uploaded, recorded checkpoints."""

    def __init__(self, settings: Settings, store: ObjectStore, lease: Lease, job: JobRow, ft_name: str) -> None:
        self.settings, self.store, self.lease, self.job, self.ft_name = settings, store, lease, job, ft_name
        self.last: dict[str, Any] = {}
        self.started = time.monotonic()

    def on_step(self, m: StepMetrics) -> None:
        self.last.update(m.row())
        if m.step % self.settings.metrics_every and m.step != m.total_steps:
            return
        eta = int(time.time() + (time.monotonic() - self.started) / max(1, m.step) * (m.total_steps - m.step))
        with owned(self.settings, self.lease) as session:
            jobs.add_event(
                session,
                self.job.id,
                f"Step {m.step}/{m.total_steps}: training loss={m.train_loss:.4f}",
                type="metrics",
                data={**m.row(), "total_steps": m.total_steps, "worker": self.job.worker_id},
            )
            jobs.set_estimated_finish(session, self.job.id, eta)

    def on_checkpoint(self, step: int, path: Path) -> None:
        with worker_metrics.CHECKPOINT_UPLOAD.time():
            prefix = artifacts.upload_checkpoint(self.store, self.job.id, step, path)
        metrics = {
            k: self.last.get(k)
            for k in ("train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy")
        }
        with owned(self.settings, self.lease) as session:
            jobs.add_checkpoint(
                session,
                CheckpointRow(
                    id=new_id("ftckpt_"),
                    job_id=self.job.id,
                    step_number=step,
                    created_at=now(),
                    fine_tuned_model_checkpoint=f"{self.ft_name}:ckpt-step-{step}",
                    metrics=metrics,
                    object_prefix=prefix,
                ),
            )
            jobs.add_event(session, self.job.id, f"Checkpoint saved at step {step}")
