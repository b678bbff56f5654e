"""The ops dashboard snapshot (`GET /v1/admin/dashboard`), also what the HTML page renders."""

from __future__ import annotations

from typing import Any, Self

from service.objects import ApiObject
from service.orm import BaseModelRow


class QueueDepth(ApiObject):
    name: str  # broker queue, e.g. "gpu.default"
    waiting: int | None  # messages no worker has taken yet; None if the broker could not be read
    live_workers: int  # alive workers consuming this queue (0 with messages waiting: nothing will run them)


class Queues(ApiObject):
    broker: str  # "redis" | "filesystem" | the URL scheme
    broker_error: str | None = None
    queues: list[QueueDepth]
    jobs_by_status: dict[str, int]


class WorkerJob(ApiObject):
    id: str
    model: str
    status: str


class Worker(ApiObject):
    id: str
    hostname: str
    gpu_classes: list[str]
    pid: int
    started_at: int
    last_seen_at: float
    last_seen_age_s: float
    alive: bool  # seen within 2 × lease_seconds
    current_task: str | None
    jobs: list[WorkerJob]  # running jobs whose lease names this worker


class Evaluation(ApiObject):
    hs: float | None = None
    base_hs: float | None = None
    fa: float | None = None
    base_fa: float | None = None


class Job(ApiObject):
    id: str
    org: str
    model: str
    status: str
    created_at: int
    finished_at: int | None
    trained_tokens: int | None
    worker_id: str | None
    error_code: str | None
    error_message: str | None
    evaluation: Evaluation | None
    safety_gate_failed: bool  # the job trained but its HS failed the safety gate (not deployed)


class Alignment(ApiObject):
    """A provider alignment run as the dashboard lists it (`from_row`: the row's columns of these names)."""

    id: str
    name: str
    status: str
    phase: str | None
    step: int
    total_steps: int | None
    gpu_class: str
    worker_id: str | None
    created_at: int
    finished_at: int | None
    error: str | None


class BaseModelSummary(ApiObject):
    name: str
    aligned: bool
    gpu_class: str
    hs_before: float | None  # the alignment manifest's HS before and after Antibody's alignment stage
    hs_after: float | None
    created_at: int
    retired_at: int | None  # when the provider retired it (no new jobs on it); null while it is offered

    @classmethod
    def from_row(cls, row: BaseModelRow) -> Self:
        return cls(
            name=row.name,
            aligned=row.aligned,
            gpu_class=row.gpu_class,
            hs_before=_hs(row.manifest, "before"),
            hs_after=_hs(row.manifest, "after"),
            created_at=row.created_at,
            retired_at=row.retired_at,
        )


def _hs(manifest: dict[str, Any], when: str) -> float | None:
    section = manifest.get(when) if isinstance(manifest, dict) else None
    value = section.get("hs") if isinstance(section, dict) else None
    return float(value) if isinstance(value, int | float) else None


class InferenceBackend(ApiObject):
    """One inference backend (service/dashboard/inference.py); counters and latency only from the embedded one."""

    url: str
    bases: list[str]  # the base models routed to it ("*" = every other)
    reachable: bool
    error: str | None = None
    served: list[str] = []
    adapters: list[str] = []  # LoRA adapters loaded now
    adapter_capacity: int | None = None
    queue_depth: int | None = None
    requests: int | None = None  # completions answered since it started
    completion_tokens: int | None = None
    latency_p50_s: float | None = None
    latency_p99_s: float | None = None


class Dashboard(ApiObject):
    object: str = "admin.dashboard"
    generated_at: float
    lease_seconds: float
    queues: Queues
    workers: list[Worker]
    jobs: list[Job]
    alignments: list[Alignment]
    base_models: list[BaseModelSummary]
    screens_by_status: dict[str, int]
    inference: list[InferenceBackend] = []
