"""The evaluation report: ``report.json`` (versioned schema, validated by pydantic) and a self-contained
``report.html`` (tables and small inline SVG charts; no scripts, no external resources).

Schema version 1 (``EvalReport.model_json_schema()`` gives the full JSON Schema):

* ``harmful``: HS of the fine-tuned model (% flagged, counts, per-prompt records), its ``protocol`` (prompt
  set, size, sha256, max_new_tokens, judge), and the base model's HS on the same protocol with the change.
* ``harmful_second_judge``: the same answers (fine-tuned and base) under the second judge
  (``worker.fine_tuning.evaluation.judges``), so the learned judge and the keyword proxy are both in every report,
  each with its judge config and version.
* ``accuracy``: FA (mode, counts, records), valid loss and mean token accuracy, the base model's numbers.
* ``training``: the per-step metrics rows (loss curve).
* ``attenuation``: ``attenuation.AttenuationSummary`` (most down-weighted lines, counts by weight bucket).

A version bump is due whenever a field is removed or changes meaning; adding optional fields is not one.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from worker.evaluation.accuracy import FAResult
from worker.evaluation.attenuation import AttenuationSummary
from worker.evaluation.harmful import HSResult
from worker.evaluation.report_html import render_html
from worker.evaluation.report_schema import SCHEMA_VERSION as SCHEMA_VERSION  # re-exported
from worker.evaluation.report_schema import (
    AccuracyExample,
    AccuracySection,
    AttenuationSection,
    BaseFA,
    BaseHS,
    EvalReport,
    HarmfulExample,
    HarmfulSection,
    Protocol,
    ReportValidationError,
    TrainingSection,
)


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


def _harmful_section(
    harmful: HSResult | None, base: HSResult | None, max_records: int, max_text: int
) -> HarmfulSection | None:
    if harmful is None:
        return None
    base_hs = None
    if base is not None:
        base_hs = BaseHS(score=base.score, n_flagged=base.n_flagged, n=base.n, protocol_id=base.protocol["protocol_id"])
    records = [
        HarmfulExample(**(asdict(r) | {"prompt": r.prompt[:max_text], "response": r.response[:max_text]}))
        for r in harmful.records[:max_records]
    ]
    return HarmfulSection(
        score=harmful.score,
        n_flagged=harmful.n_flagged,
        n=harmful.n,
        protocol=Protocol(**harmful.protocol),
        base=base_hs,
        delta=harmful.score - base_hs.score if base_hs else None,
        records=records,
    )


def build_report(
    *,
    harmful: HSResult | None = None,
    base_harmful: HSResult | None = None,
    harmful_second: HSResult | None = None,
    base_harmful_second: HSResult | None = None,
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
        hs = _harmful_section(harmful, base_harmful, max_records, max_text)
        hs2 = _harmful_section(harmful_second, base_harmful_second, max_records, max_text)
        fa = None
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
            harmful_second_judge=hs2,
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
