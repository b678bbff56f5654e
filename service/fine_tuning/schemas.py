"""Fine-tuning request bodies and response objects, mirroring openai-python v3's types."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from service.orm import CheckpointRow, JobEventRow, JobRow

Auto = Literal["auto"]


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: Auto | int | None = None
    learning_rate_multiplier: Auto | float | None = None
    n_epochs: Auto | int | None = None


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    model_config = ConfigDict(extra="allow")
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1)
    training_file: str = Field(min_length=1)
    hyperparameters: Hyperparameters | None = None
    integrations: list[dict[str, Any]] | None = None
    metadata: dict[str, str] | None = None
    method: Method | None = None
    seed: int | None = Field(default=None, ge=0, le=2**31 - 1)
    suffix: str | None = Field(default=None, max_length=64)
    validation_file: str | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if len(v) > 16:
            raise ValueError("at most 16 key-value pairs")
        for key, value in v.items():
            if len(key) > 64:
                raise ValueError(f"key '{key[:20]}…' is longer than 64 characters")
            if len(value) > 512:
                raise ValueError(f"value of '{key}' is longer than 512 characters")
        return v

    @field_validator("suffix")
    @classmethod
    def _suffix_chars(cls, v: str | None) -> str | None:
        if v is not None and not all(c.isalnum() or c in "-_" for c in v):
            raise ValueError("may contain only letters, digits, '-' and '_'")
        return v or None


def job_object(row: JobRow) -> dict[str, Any]:
    hp = row.hyperparameters
    return {
        "id": row.id,
        "object": "fine_tuning.job",
        "created_at": row.created_at,
        "error": row.error,
        "fine_tuned_model": row.fine_tuned_model,
        "finished_at": row.finished_at,
        "hyperparameters": hp,
        "model": row.model,
        "organization_id": row.org_id,
        "result_files": list(row.result_files or []),
        "seed": row.seed,
        "status": row.status,
        "trained_tokens": row.trained_tokens,
        "training_file": row.training_file,
        "validation_file": row.validation_file,
        "estimated_finish": row.estimated_finish,
        "integrations": row.integrations,
        "metadata": row.job_metadata,
        "method": {"type": "supervised", "supervised": {"hyperparameters": hp}},
        "user_provided_suffix": row.suffix,
    }


def event_object(row: JobEventRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "fine_tuning.job.event",
        "created_at": row.created_at,
        "level": row.level,
        "message": row.message,
        "type": row.type,
        "data": row.data,
    }


def checkpoint_object(row: CheckpointRow) -> dict[str, Any]:
    return {
        "id": row.id,
        "object": "fine_tuning.job.checkpoint",
        "created_at": row.created_at,
        "fine_tuned_model_checkpoint": row.fine_tuned_model_checkpoint,
        "fine_tuning_job_id": row.job_id,
        "metrics": {"step": row.step_number, **(row.metrics or {})},
        "step_number": row.step_number,
    }
