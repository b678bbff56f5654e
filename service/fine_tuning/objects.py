"""Response objects of the jobs API, field for field openai-python's `FineTuningJob`, `FineTuningJobEvent` and
`FineTuningJobCheckpoint` (plus the `paused` status): the OpenAPI document's 200 schemas, which schemathesis checks
every response against. Each object's `from_row` is the one place a row becomes it; nullable fields are present as
null.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from service.objects import ApiObject
from service.orm import CheckpointRow, JobEventRow, JobRow

Auto = Literal["auto"]


class JobError(ApiObject):
    code: str
    message: str
    param: str | None


class HyperparametersObject(ApiObject):
    batch_size: Auto | int | None
    learning_rate_multiplier: Auto | float | None
    n_epochs: Auto | int | None


class SupervisedObject(ApiObject):
    hyperparameters: HyperparametersObject


class MethodObject(ApiObject):
    type: Literal["supervised"]
    supervised: SupervisedObject


class WandbObject(ApiObject):
    project: str
    name: str | None
    entity: str | None
    tags: list[str] | None
    run_id: str  # as OpenAI shows it: the W&B run the worker logs to, named after the job


class IntegrationObject(ApiObject):
    type: Literal["wandb"]
    wandb: WandbObject

    @classmethod
    def of_job(cls, row: JobRow) -> list[IntegrationObject] | None:
        if not row.integrations:
            return None
        return [cls(type="wandb", wandb=WandbObject(**i["wandb"], run_id=row.id)) for i in row.integrations]


class FineTuningJob(ApiObject):
    id: str
    object: Literal["fine_tuning.job"] = "fine_tuning.job"
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
    integrations: list[IntegrationObject] | None
    metadata: dict[str, str] | None
    method: MethodObject
    user_provided_suffix: str | None

    @classmethod
    def from_row(cls, row: JobRow) -> Self:
        hp = row.hyperparameters
        return cls(
            id=row.id,
            created_at=row.created_at,
            error=row.error,  # type: ignore[arg-type]
            fine_tuned_model=row.fine_tuned_model,
            finished_at=row.finished_at,
            hyperparameters=hp,  # type: ignore[arg-type]
            model=row.parent_model or row.model,  # what the customer passed, as OpenAI echoes it
            organization_id=row.org_id,
            result_files=list(row.result_files or []),
            seed=row.seed,
            status=row.status,  # type: ignore[arg-type]
            trained_tokens=row.trained_tokens,
            training_file=row.training_file,
            validation_file=row.validation_file,
            estimated_finish=row.estimated_finish,
            integrations=IntegrationObject.of_job(row),
            metadata=row.job_metadata,
            method={"type": "supervised", "supervised": {"hyperparameters": hp}},  # type: ignore[arg-type]
            user_provided_suffix=row.suffix,
        )


class FineTuningJobEvent(ApiObject):
    id: str
    object: Literal["fine_tuning.job.event"] = "fine_tuning.job.event"
    created_at: int
    level: Literal["info", "warn", "error"]
    message: str
    type: Literal["message", "metrics"] | None
    data: Any


class FineTuningJobCheckpoint(ApiObject):
    id: str
    object: Literal["fine_tuning.job.checkpoint"] = "fine_tuning.job.checkpoint"
    created_at: int
    fine_tuned_model_checkpoint: str
    fine_tuning_job_id: str
    metrics: dict[str, float | int | None]
    step_number: int

    @classmethod
    def from_row(cls, row: CheckpointRow) -> Self:
        return cls(
            id=row.id,
            created_at=row.created_at,
            fine_tuned_model_checkpoint=row.fine_tuned_model_checkpoint,
            fine_tuning_job_id=row.job_id,
            metrics={"step": row.step_number, **(row.metrics or {})},
            step_number=row.step_number,
        )


class _Page(ApiObject):
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


def event_object(row: JobEventRow) -> dict[str, Any]:
    """The event as a JSON-ready dict, for the server-sent events stream (`event_stream`)."""
    return FineTuningJobEvent.from_row(row).model_dump(mode="json")
