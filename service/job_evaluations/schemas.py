"""Response objects of the re-evaluation admin API (see ``service.job_evaluations.service``)."""

from __future__ import annotations

from typing import Any, Literal

from service.objects import ApiObject


class JobEvaluation(ApiObject):
    """`fine_tuning.job.evaluation`: one provider re-run of a job's evaluation."""

    id: str
    object: Literal["fine_tuning.job.evaluation"] = "fine_tuning.job.evaluation"
    job_id: str
    status: Literal["queued", "running", "succeeded", "failed"]
    gpu_class: str
    attempts: int
    worker_id: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    result: dict[str, Any] | None
    error: str | None


class JobEvaluationList(ApiObject):
    object: Literal["list"] = "list"
    data: list[JobEvaluation]
