"""The shape of a job's evaluation report (`GET /fine_tuning/jobs/{id}/report`, and its attenuation section).

Field for field `worker.evaluation.report_schema` (version 1), which writes and checks the reports; this copy only
documents them, without the worker's consistency checks, so the service imports nothing of the worker.
`tests/service/test_response_models.py` keeps the two JSON schemas equal.
"""

from __future__ import annotations

from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field

SCHEMA_VERSION: Literal[1] = 1
Percent = float  # documented range [0, 100]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Protocol(_Model):
    prompt_set: str
    size: int = Field(ge=0)
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    max_new_tokens: int = Field(ge=1)
    decoding: str = "greedy"
    system_prompt: str | None = None
    judge: str
    judge_config: dict[str, Any] = Field(default_factory=dict)
    protocol_id: str


class HarmfulExample(_Model):
    index: int
    prompt: str
    response: str
    flagged: bool
    finished: bool
    new_tokens: int = Field(default=0, ge=0)


class BaseHS(_Model):
    score: Percent = Field(ge=0, le=100)
    n_flagged: int = Field(ge=0)
    n: int = Field(ge=0)
    protocol_id: str


class HarmfulSection(_Model):
    score: Percent = Field(ge=0, le=100)
    n_flagged: int = Field(ge=0)
    n: int = Field(ge=0)
    protocol: Protocol
    base: BaseHS | None = None
    delta: float | None = None  # score − base.score, percentage points
    records: list[HarmfulExample] = Field(default_factory=list)


class AccuracyExample(_Model):
    index: int
    prediction: str
    reference: str
    extracted: str | None
    correct: bool


class BaseFA(_Model):
    accuracy: Percent | None = Field(default=None, ge=0, le=100)
    n_correct: int | None = None
    n: int | None = None
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = Field(default=None, ge=0, le=1)


class AccuracySection(_Model):
    accuracy: Percent = Field(ge=0, le=100)
    n_correct: int = Field(ge=0)
    n: int = Field(ge=0)
    mode: Literal["exact", "number", "label"]
    mode_source: Literal["auto", "override"]
    source: str
    labels: list[str] = Field(default_factory=list)
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = Field(default=None, ge=0, le=1)
    base: BaseFA | None = None
    delta: float | None = None  # accuracy − base.accuracy, percentage points
    records: list[AccuracyExample] = Field(default_factory=list)


class TrainingSection(_Model):
    metrics: list[dict[str, float | int | None]] = Field(default_factory=list)


class Bucket(_Model):
    low: float  # relative weight, inclusive
    high: float | None  # exclusive; None = open
    count: int = Field(ge=0)


class DownWeightedLine(_Model):
    line: int = Field(ge=1)
    mean_weight: float
    relative_weight: float
    min_weight: float
    times_seen: int
    preview: str


class AttenuationSection(_Model):
    n_lines: int = Field(ge=0)
    mean_weight: float
    attenuated_below: float
    n_attenuated: int = Field(ge=0)
    attenuated_fraction: float = Field(ge=0, le=1)
    buckets: list[Bucket]
    most_down_weighted: list[DownWeightedLine]


class EvalReport(_Model):
    schema_version: Literal[1] = SCHEMA_VERSION
    created_at: str
    job_id: str | None = None
    model: str | None = None
    base_model: str | None = None
    harmful: HarmfulSection | None = None
    harmful_second_judge: HarmfulSection | None = None  # the same answers under the other judge
    accuracy: AccuracySection | None = None
    training: TrainingSection | None = None
    attenuation: AttenuationSection | None = None
    notes: list[str] = Field(default_factory=list)


class JobAttenuation(BaseModel):
    """Which training lines Antibody down-weighted: the report's attenuation section, tagged with the job.

    A report without an attenuation section gives only `object` and `fine_tuning_job_id` (served with
    `response_model_exclude_unset`, so the section's fields are absent then, not null).
    """

    model_config = ConfigDict(extra="forbid")
    object: Literal["fine_tuning.job.attenuation"]
    fine_tuning_job_id: str
    n_lines: int | None = Field(default=None, ge=0)
    mean_weight: float | None = None
    attenuated_below: float | None = None
    n_attenuated: int | None = Field(default=None, ge=0)
    attenuated_fraction: float | None = Field(default=None, ge=0, le=1)
    buckets: list[Bucket] | None = None
    most_down_weighted: list[DownWeightedLine] | None = None

    @classmethod
    def of_report(cls, job_id: str, report: dict[str, Any]) -> Self:
        section = report.get("attenuation") or {}
        return cls.model_validate({"object": "fine_tuning.job.attenuation", "fine_tuning_job_id": job_id, **section})
