"""Response objects of the jobs API, field for field openai-python's `FineTuningJob`, `FineTuningJobEvent` and
`FineTuningJobCheckpoint` (plus the `paused` status): the OpenAPI document's 200 schemas, which schemathesis checks
every response against. `job_object` & co. build them from rows; nullable fields are present as null.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel

from service.orm import CheckpointRow, JobEventRow, JobRow

Auto = Literal["auto"]


class JobError(BaseModel):
    code: str
    message: str
    param: str | None


class HyperparametersObject(BaseModel):
    batch_size: Auto | int | None
    learning_rate_multiplier: Auto | float | None
    n_epochs: Auto | int | None


class SupervisedObject(BaseModel):
    hyperparameters: HyperparametersObject


class MethodObject(BaseModel):
    type: Literal["supervised"]
    supervised: SupervisedObject


class FineTuningJob(BaseModel):
    id: str
    object: Literal["fine_tuning.job"]
    created_at: int
    error: JobError | None
    fine_tuned_model: str | None
    finished_at: int | None
    hyperparameters: HyperparametersObject
    model: str
    organization_id: str
    result_files: list[str]
    seed: int
    status: Literal["validating_files", "queued", "running", "paused", "succeeded", "failed", "cancelled"]
    trained_tokens: int | None
    training_file: str
    validation_file: str | None
    estimated_finish: int | None
    integrations: list[dict[str, Any]] | None
    metadata: dict[str, str] | None
    method: MethodObject
    user_provided_suffix: str | None


class FineTuningJobEvent(BaseModel):
    id: str
    object: Literal["fine_tuning.job.event"]
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] | None
    data: Any


class FineTuningJobCheckpoint(BaseModel):
    id: str
    object: Literal["fine_tuning.job.checkpoint"]
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float | int | None]
    step_number: int


class _Page(BaseModel):
    object: Literal["list"]
    first_id: str | None
    last_id: str | None
    has_more: bool


class JobList(_Page):
    data: list[FineTuningJob]


class EventList(_Page):
    data: list[FineTuningJobEvent]


class CheckpointList(_Page):
    data: list[FineTuningJobCheckpoint]


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
