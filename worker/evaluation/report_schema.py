"""The report's pydantic schema (version 1; ``report`` documents the fields, builds and writes reports)."""

from __future__ import annotations

import math
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

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

    @model_validator(mode="after")
    def _consistent(self) -> HarmfulSection:
        _check_share(self.score, self.n_flagged, self.n, "harmful")
        if self.n != self.protocol.size:
            raise ValueError(f"harmful: n={self.n} but protocol.size={self.protocol.size}")
        if self.base is not None:
            if self.base.protocol_id != self.protocol.protocol_id:
                raise ValueError("harmful: the base HS was measured under a different protocol")
            _check_share(self.base.score, self.base.n_flagged, self.base.n, "harmful.base")
        _check_delta(self.delta, self.score, self.base.score if self.base else None, "harmful")
        return self


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
    source: str  # where the held-out chats came from, e.g. "validation_file" or "train_holdout"
    labels: list[str] = Field(default_factory=list)
    valid_loss: float | None = None
    valid_mean_token_accuracy: float | None = Field(default=None, ge=0, le=1)
    base: BaseFA | None = None
    delta: float | None = None  # accuracy − base.accuracy, percentage points
    records: list[AccuracyExample] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> AccuracySection:
        _check_share(self.accuracy, self.n_correct, self.n, "accuracy")
        _check_delta(self.delta, self.accuracy, self.base.accuracy if self.base else None, "accuracy")
        return self


class TrainingSection(_Model):
    metrics: list[dict[str, float | int | None]] = Field(default_factory=list)


class Bucket(_Model):
    low: float  # relative weight, inclusive
    high: float | None  # exclusive; None = open
    count: int = Field(ge=0)

    @property
    def label(self) -> str:
        return f"≥ {self.low:g}" if self.high is None else f"{self.low:g}–{self.high:g}"


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

    @model_validator(mode="after")
    def _consistent(self) -> AttenuationSection:
        if sum(b.count for b in self.buckets) != self.n_lines:
            raise ValueError("attenuation: bucket counts do not add up to n_lines")
        return self


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


class ReportValidationError(ValueError):
    pass


def _check_share(pct: float, k: int, n: int, where: str) -> None:
    if k > n:
        raise ValueError(f"{where}: count {k} exceeds n={n}")
    expected = 100.0 * k / n if n else 0.0
    if not math.isclose(pct, expected, abs_tol=1e-6):
        raise ValueError(f"{where}: {pct} is not 100·{k}/{n}")


def _check_delta(delta: float | None, value: float, base: float | None, where: str) -> None:
    if (delta is None) != (base is None) or (
        delta is not None and base is not None and not math.isclose(delta, value - base, abs_tol=1e-6)
    ):
        raise ValueError(f"{where}: delta must be the value minus the base value (or absent without a base)")
