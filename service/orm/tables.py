"""The tables of the API's own objects: orgs, keys, files, base models, jobs and their events, models, webhooks,
dashboard sessions, uploads, quotas."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Boolean, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from service.orm.base import Base, Seq


class OrgRow(Base):
    __tablename__ = "organizations"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    created_at: Mapped[int] = mapped_column(BigInteger)


class ApiKeyRow(Base):
    __tablename__ = "api_keys"
    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    prefix: Mapped[str] = mapped_column(String(16))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[int] = mapped_column(BigInteger)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class FileRow(Base):
    __tablename__ = "files"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(20))
    status_details: Mapped[str | None] = mapped_column(Text, default=None)
    examples: Mapped[int | None] = mapped_column(Integer, default=None)
    object_key: Mapped[str | None] = mapped_column(String(512), default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class BaseModelRow(Base):
    """A provider base model that customers may fine-tune (pre-aligned by Antibody's alignment stage)."""

    __tablename__ = "base_models"
    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    path: Mapped[str] = mapped_column(String(1024))
    aligned: Mapped[bool] = mapped_column(Boolean, default=False)
    gpu_class: Mapped[str] = mapped_column(String(40), default="default")
    manifest: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[int] = mapped_column(BigInteger)
    retired_at: Mapped[int | None] = mapped_column(BigInteger, default=None)  # no new work on it; files are kept


class JobRow(Base):
    __tablename__ = "fine_tuning_jobs"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    model: Mapped[str] = mapped_column(String(200))  # the base model trained and evaluated on, always
    # Set when the job continues from a fine-tuned model or checkpoint: the name the customer passed as `model`
    # (what the API shows) and the object-store folder of the adapter that training starts from.
    parent_model: Mapped[str | None] = mapped_column(String(300), default=None)
    parent_adapter_prefix: Mapped[str | None] = mapped_column(String(512), default=None)
    training_file: Mapped[str] = mapped_column(String(40))
    validation_file: Mapped[str | None] = mapped_column(String(40), default=None)
    status: Mapped[str] = mapped_column(String(20), index=True)
    hyperparameters: Mapped[dict[str, Any]] = mapped_column(default=dict)
    method: Mapped[dict[str, Any]] = mapped_column(default=dict)
    suffix: Mapped[str | None] = mapped_column(String(64), default=None)
    seed: Mapped[int] = mapped_column(BigInteger)
    job_metadata: Mapped[dict[str, Any] | None] = mapped_column("metadata", JSON, default=None)
    integrations: Mapped[list[Any] | None] = mapped_column(JSON, default=None)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)
    fine_tuned_model: Mapped[str | None] = mapped_column(String(300), default=None)
    result_files: Mapped[list[Any]] = mapped_column(default=list)
    trained_tokens: Mapped[int | None] = mapped_column(BigInteger, default=None)
    created_at: Mapped[int] = mapped_column(BigInteger)
    finished_at: Mapped[int | None] = mapped_column(BigInteger, default=None)
    estimated_finish: Mapped[int | None] = mapped_column(BigInteger, default=None)
    # Worker coordination: the DB owns job state; Celery only wakes workers.
    control: Mapped[str | None] = mapped_column(String(20), default=None)  # "cancel" | "pause" requested
    lease_token: Mapped[str | None] = mapped_column(String(40), default=None)
    lease_expires_at: Mapped[float | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    enqueued_at: Mapped[float | None] = mapped_column(default=None)
    claimed_at: Mapped[float | None] = mapped_column(default=None)  # last claim: fair scheduling's round-robin
    evaluation: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)  # HS/FA summary of report.json
    worker_id: Mapped[str | None] = mapped_column(String(200), default=None)
    idempotency_key: Mapped[str | None] = mapped_column(String(255), default=None)
    request_hash: Mapped[str | None] = mapped_column(String(64), default=None)

    __table_args__ = (
        Index("uq_fine_tuning_jobs_org_idempotency", "org_id", "idempotency_key", unique=True),
        Index("ix_fine_tuning_jobs_org_claimed", "org_id", "claimed_at"),  # an org's last claim, per claim
    )


class JobEventRow(Base):
    __tablename__ = "fine_tuning_job_events"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    level: Mapped[str] = mapped_column(String(10), default="info")
    message: Mapped[str] = mapped_column(Text)
    type: Mapped[str] = mapped_column(String(10), default="message")
    data: Mapped[dict[str, Any] | None] = mapped_column(JSON, default=None)


class CheckpointRow(Base):
    __tablename__ = "fine_tuning_checkpoints"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"), index=True)
    step_number: Mapped[int] = mapped_column(Integer)
    fine_tuned_model_checkpoint: Mapped[str] = mapped_column(String(300))
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    object_prefix: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)


class FineTunedModelRow(Base):
    __tablename__ = "fine_tuned_models"
    id: Mapped[str] = mapped_column(String(300), primary_key=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    job_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_jobs.id", ondelete="CASCADE"))
    base_model: Mapped[str] = mapped_column(String(200))
    adapter_prefix: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)
    deleted_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class WebhookEndpointRow(Base):
    """Where job outcome events are POSTed, signed per Standard Webhooks. org_id None = every org (provider)."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    org_id: Mapped[str | None] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    url: Mapped[str] = mapped_column(String(2048))
    secret: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[int] = mapped_column(BigInteger)
    disabled_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class DashboardSessionRow(Base):
    """A browser session of the ops dashboard (service/dashboard/login.py). The cookie holds a random token and this
    row only its SHA-256, so neither a DB dump nor a key hash can be turned into a cookie; logout sets revoked_at."""

    __tablename__ = "dashboard_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    key_hash: Mapped[str] = mapped_column(ForeignKey("api_keys.key_hash", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    revoked_at: Mapped[int | None] = mapped_column(BigInteger, default=None)


class CheckpointPermissionRow(Base):
    """Another org allowed to call a checkpoint (OpenAI's checkpoint permission; a project here is an org)."""

    __tablename__ = "checkpoint_permissions"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    checkpoint_id: Mapped[str] = mapped_column(ForeignKey("fine_tuning_checkpoints.id", ondelete="CASCADE"), index=True)
    project_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index("uq_checkpoint_permissions_checkpoint_project", "checkpoint_id", "project_id", unique=True),
    )


class UploadRow(Base):
    """An Upload (service/uploads/): a file sent in parts, joined into a FileRow on complete. `status` is pending,
    completed, cancelled, expired or failed (content refused on complete; never shown, the API answers a 400)."""

    __tablename__ = "uploads"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(512))
    purpose: Mapped[str] = mapped_column(String(40))
    bytes: Mapped[int] = mapped_column(BigInteger)
    mime_type: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), index=True)
    created_at: Mapped[int] = mapped_column(BigInteger)
    expires_at: Mapped[int] = mapped_column(BigInteger, index=True)
    file_expires_after: Mapped[int | None] = mapped_column(BigInteger, default=None)  # the file's expires_after
    file_id: Mapped[str | None] = mapped_column(String(40), default=None)
    part_ids: Mapped[list[Any] | None] = mapped_column(JSON, default=None)  # as completed, for an idempotent retry


class UploadPartRow(Base):
    """One stored part of a pending upload; the row is deleted with its bytes when the upload ends."""

    __tablename__ = "upload_parts"
    seq: Mapped[int] = mapped_column(Seq, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(40), unique=True)
    upload_id: Mapped[str] = mapped_column(ForeignKey("uploads.id", ondelete="CASCADE"), index=True)
    bytes: Mapped[int] = mapped_column(BigInteger)
    object_key: Mapped[str] = mapped_column(String(512))
    created_at: Mapped[int] = mapped_column(BigInteger)


class OrgQuotaRow(Base):
    """The provider's per-org override of the quota_* settings (service/quotas/); a null keeps the default."""

    __tablename__ = "org_quotas"
    org_id: Mapped[str] = mapped_column(ForeignKey("organizations.id", ondelete="CASCADE"), primary_key=True)
    running_jobs: Mapped[int | None] = mapped_column(Integer, default=None)
    queued_jobs: Mapped[int | None] = mapped_column(Integer, default=None)
    upload_bytes_per_day: Mapped[int | None] = mapped_column(BigInteger, default=None)
    requests_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[int] = mapped_column(BigInteger)


class QuotaUsageRow(Base):
    """A fixed-window quota counter when there is no Redis (embedded): one row per org, counter and window."""

    __tablename__ = "quota_usage"
    org_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    counter: Mapped[str] = mapped_column(String(40), primary_key=True)
    window_start: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)
