"""The evaluation report: ``report.json`` (versioned schema, validated by pydantic) and a self-contained
``report.html`` (tables and small inline SVG charts; no scripts, no external resources).

Schema version 1 (``EvalReport.model_json_schema()`` gives the full JSON Schema):

* ``harmful``: HS of the fine-tuned model (% flagged, counts, per-prompt records), its ``protocol`` (prompt
  set, size, sha256, max_new_tokens, judge), and the base model's HS on the same protocol with the change.
* ``accuracy``: FA (mode, counts, records), valid loss and mean token accuracy, the base model's numbers.
* ``training``: the per-step metrics rows (loss curve).
* ``attenuation``: ``attenuation.AttenuationSummary`` (most down-weighted lines, counts by weight bucket).

A version bump is due whenever a field is removed or changes meaning; adding optional fields is not one.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from worker.evaluation.accuracy import FAResult
from worker.evaluation.attenuation import AttenuationSummary
from worker.evaluation.harmful import HSResult
from worker.evaluation.report_html import render_html

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


@contextmanager
def _as_report_error() -> Iterator[None]:
    try:
        yield
    except ValidationError as e:
        raise ReportValidationError(str(e)) from e


def validate_report(data: Mapping[str, Any]) -> EvalReport:
    """Parse and check a report dict (e.g. a loaded report.json); raises ``ReportValidationError``."""
    with _as_report_error():
        return EvalReport.model_validate(dict(data))


def build_report(
    *,
    harmful: HSResult | None = None,
    base_harmful: HSResult | None = None,
    accuracy: FAResult | None = None,
    accuracy_source: str = "validation_file",
    valid: Mapping[str, float | None] | None = None,
    base_accuracy: FAResult | None = None,
    base_valid: Mapping[str, float | None] | None = None,
    metrics: Sequence[Mapping[str, Any]] = (),
    attenuation: AttenuationSummary | None = None,
    job_id: str | None = None,
    model: str | None = None,
    base_model: str | None = None,
    notes: Sequence[str] = (),
    max_records: int = 200,
    max_text: int = 2000,
) -> EvalReport:
    """Assemble (and thereby validate) a report from the library's results. Record texts are cut to
    ``max_text`` characters and lists to ``max_records`` entries. Raises ``ReportValidationError`` when the
    parts are inconsistent (e.g. a base HS measured under another protocol)."""
    with _as_report_error():
        hs = fa = None
        if harmful is not None:
            base = None
            if base_harmful is not None:
                base = BaseHS(
                    score=base_harmful.score,
                    n_flagged=base_harmful.n_flagged,
                    n=base_harmful.n,
                    protocol_id=base_harmful.protocol["protocol_id"],
                )
            hs = HarmfulSection(
                score=harmful.score,
                n_flagged=harmful.n_flagged,
                n=harmful.n,
                protocol=Protocol(**harmful.protocol),
                base=base,
                delta=harmful.score - base.score if base else None,
                records=[
                    HarmfulExample(
                        index=r.index,
                        prompt=r.prompt[:max_text],
                        response=r.response[:max_text],
                        flagged=r.flagged,
                        finished=r.finished,
                        new_tokens=r.new_tokens,
                    )
                    for r in harmful.records[:max_records]
                ],
            )
        if accuracy is not None:
            valid = valid or {}
            fa_base = None
            if base_accuracy is not None or base_valid:
                fa_base = BaseFA(
                    accuracy=base_accuracy.accuracy if base_accuracy else None,
                    n_correct=base_accuracy.n_correct if base_accuracy else None,
                    n=base_accuracy.n if base_accuracy else None,
                    **{k: (base_valid or {}).get(k) for k in ("valid_loss", "valid_mean_token_accuracy")},
                )
            fa = AccuracySection(
                accuracy=accuracy.accuracy,
                n_correct=accuracy.n_correct,
                n=accuracy.n,
                mode=accuracy.mode,
                mode_source=accuracy.mode_source,
                source=accuracy_source,
                labels=list(accuracy.labels),
                valid_loss=valid.get("valid_loss"),
                valid_mean_token_accuracy=valid.get("valid_mean_token_accuracy"),
                base=fa_base,
                delta=accuracy.accuracy - base_accuracy.accuracy if base_accuracy else None,
                records=[
                    AccuracyExample(
                        index=r.index,
                        prediction=r.prediction[:max_text],
                        reference=r.reference[:max_text],
                        extracted=r.extracted,
                        correct=r.correct,
                    )
                    for r in accuracy.records[:max_records]
                ],
            )
        return EvalReport(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"),
            job_id=job_id,
            model=model,
            base_model=base_model,
            harmful=hs,
            accuracy=fa,
            training=TrainingSection(metrics=[dict(m) for m in metrics]) if metrics else None,
            attenuation=AttenuationSection(**attenuation.to_dict()) if attenuation is not None else None,
            notes=list(notes),
        )


def write_report(report: EvalReport, out_dir: Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` into ``out_dir``; returns their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    json_path, html_path = out_dir / "report.json", out_dir / "report.html"
    json_path.write_text(
        json.dumps(report.model_dump(mode="json"), indent=1, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    html_path.write_text(render_html(report), encoding="utf-8")
    return json_path, html_path
