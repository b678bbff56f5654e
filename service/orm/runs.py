"""The tables of queued runs a worker claims by attempt number (file screens, alignments, job re-evaluations)
and of the workers themselves (worker/leases.py, worker/registry.py)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.orm.base import Base


class FileScreenRow(Base):
    """Antibody pre-screen of an uploaded file on one base model: per-line ratio r_i, no training."""

    __tablename__ = "file_screens"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    file_id: Mapped[str] = mapped_column(ForeignKey("files.id", ondelete="CASCADE"), index=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    base_model: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20))  # queued | running | succeeded | failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Ownership while running (worker/leases.py): the attempt number fences writes, the heartbeat shows life.
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    heartbeat_at: Mapped[float | None] = mapped_column(default=None)
    enqueued_at: Mapped[float | None] = mapped_column(default=None)  # last publish to the broker
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)

    __table_args__ = (Index("uq_file_screens_file_base", "file_id", "base_model", unique=True),)


class AlignmentRow(Base):
    """A provider alignment job (Antibody stage 1) started through the admin API; the result is a base model."""

    __tablename__ = "base_model_alignments"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)  # the base model it registers
    spec: Mapped[dict[str, Any]] = mapped_column(default=dict)  # worker.alignment.runner.AlignmentSpec fields
    gpu_class: Mapped[str] = mapped_column(String(40), default="default")
    status: Mapped[str] = mapped_column(String(20), index=True)  # queued | running | succeeded | failed
    phase: Mapped[str | None] = mapped_column(String(200), default=None)
    step: Mapped[int] = mapped_column(Integer, default=0)
    total_steps: Mapped[int | None] = mapped_column(Integer, default=None)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # the registered base model
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[float | None] = mapped_column(default=None)
    enqueued_at: Mapped[float | None] = mapped_column(default=None)  # last publish to the broker
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)


class WorkerRow(Base):
    """A worker process, upserted by its sweeper thread (worker/registry.py); alive while last_seen_at is fresh."""

    __tablename__ = "workers"
    id: Mapped[str] = mapped_column(String(200), primary_key=True)  # the worker_id it writes on the runs it claims
    hostname: Mapped[str] = mapped_column(String(255))
    gpu_classes: Mapped[str] = mapped_column(String(400))  # comma-separated, as given to `ftaas worker`
    pid: Mapped[int] = mapped_column(Integer)
    started_at: Mapped[int] = mapped_column(BigInteger)
    last_seen_at: Mapped[float] = mapped_column(index=True)
    current_task: Mapped[str | None] = mapped_column(String(400), default=None)  # e.g. "ftaas.process_job(ftjob-…)"


class EvaluationRow(Base):
    """A provider's re-run of a finished job's evaluation (HS, FA, the gate's verdict) on its published adapter."""

    __tablename__ = "job_evaluations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True)
    gpu_class: Mapped[str] = mapped_column(String(40), default="default")  # the job's base model's, at request time
    status: Mapped[str] = mapped_column(String(20), index=True)  # queued | running | succeeded | failed
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # summary, verdict, report keys
    error: Mapped[str | None] = mapped_column(Text, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    started_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    heartbeat_at: Mapped[float | None] = mapped_column(default=None)
    enqueued_at: Mapped[float | None] = mapped_column(default=None)  # last publish to the broker
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
