"""The ops dashboard snapshot (`GET /v1/admin/dashboard`), also what the HTML page renders."""

from __future__ import annotations

from pydantic import BaseModel


class QueueDepth(BaseModel):
    name: str  # broker queue, e.g. "gpu.default"
    waiting: int | None  # messages no worker has taken yet; None if the broker could not be read
    live_workers: int  # alive workers consuming this queue (0 with messages waiting: nothing will run them)


class Queues(BaseModel):
    broker: str  # "redis" | "filesystem" | the URL scheme
    broker_error: str | None = None
    queues: list[QueueDepth]
    jobs_by_status: dict[str, int]


class WorkerJob(BaseModel):
    id: str
    model: str
    status: str


class Worker(BaseModel):
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


class Evaluation(BaseModel):
    hs: float | None = None
    base_hs: float | None = None
    fa: float | None = None
    base_fa: float | None = None


class Job(BaseModel):
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


class Alignment(BaseModel):
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


class BaseModelSummary(BaseModel):
    name: str
    aligned: bool
    gpu_class: str
    hs_before: float | None  # the alignment manifest's HS before and after Antibody's alignment stage
    hs_after: float | None
    created_at: int


class Dashboard(BaseModel):
    object: str = "admin.dashboard"
    generated_at: float
    lease_seconds: float
    queues: Queues
    workers: list[Worker]
    jobs: list[Job]
    alignments: list[Alignment]
    base_models: list[BaseModelSummary]
    screens_by_status: dict[str, int]
