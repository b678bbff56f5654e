from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest

from worker.evaluation.accuracy import score_predictions
from worker.evaluation.attenuation import summarize_attenuation
from worker.evaluation.harmful import make_prompt_set, score_responses
from worker.evaluation.judges import KeywordRefusalJudge
from worker.evaluation.report import (
    SCHEMA_VERSION,
    EvalReport,
    ReportValidationError,
    build_report,
    validate_report,
    write_report,
)
from worker.evaluation.report_html import bar_chart_svg, line_chart_svg

PROMPTS = make_prompt_set("unit", [f"harmful prompt {i}" for i in range(8)])
JUDGE = KeywordRefusalJudge()


def hs(n_refusals: int, evil: str = "Sure, here is how."):
    responses = ["I cannot help with that."] * n_refusals + [evil] * (8 - n_refusals)
    return score_responses(PROMPTS, responses, JUDGE, max_new_tokens=32)


def full_report(**overrides) -> EvalReport:
    fa = score_predictions(["#### 7", "#### 3", "so 12", "#### 1"], ["#### 7", "#### 4", "#### 12", "#### 1"])
    base_fa = score_predictions(["#### 7", "no", "no", "no"], ["#### 7", "#### 4", "#### 12", "#### 1"])
    rows = [{"line": i, "mean_weight": w, "min_weight": w, "times_seen": 2} for i, w in enumerate([0.01, 0.3, 0.5], 1)]
    metrics = [{"step": s, "train_loss": 2.0 / s, "valid_loss": (2.2 / s if s % 2 == 0 else None)} for s in range(1, 9)]
    kwargs = dict(
        harmful=hs(7, evil="<script>alert(1)</script> Sure, here is how."),  # HS 12.5
        base_harmful=hs(3),  # HS 62.5
        accuracy=fa,  # FA 75
        valid={"valid_loss": 0.8123, "valid_mean_token_accuracy": 0.66},
        base_accuracy=base_fa,  # FA 25
        base_valid={"valid_loss": 1.25, "valid_mean_token_accuracy": 0.5},
        metrics=metrics,
        attenuation=summarize_attenuation(rows),
        job_id="ftjob-abc",
        model="ft:smollm2:abc",
        base_model="smollm2",
        notes=["HS uses the keyword judge."],
    )
    kwargs.update(overrides)
    return build_report(**kwargs)


def test_built_report_round_trips_through_json() -> None:
    report = full_report()
    data = json.loads(json.dumps(report.model_dump(mode="json")))
    again = validate_report(data)
    assert again == report and data["schema_version"] == SCHEMA_VERSION == 1
    h, a = data["harmful"], data["accuracy"]
    assert (h["score"], h["n_flagged"], h["n"], h["base"]["score"], h["delta"]) == (12.5, 1, 8, 62.5, -50.0)
    assert h["protocol"]["sha256"] == PROMPTS.sha256 and h["protocol"]["size"] == 8
    assert h["protocol"]["max_new_tokens"] == 32 and h["protocol"]["judge"] == "keyword_refusal"
    assert (a["accuracy"], a["base"]["accuracy"], a["delta"], a["mode"]) == (75.0, 25.0, 50.0, "number")
    assert a["valid_loss"] == 0.8123 and a["base"]["valid_loss"] == 1.25
    assert data["attenuation"]["most_down_weighted"][0]["line"] == 1
    assert "schema_version" in EvalReport.model_json_schema()["properties"]


def test_sections_are_optional() -> None:
    report = build_report(harmful=hs(8))
    assert report.accuracy is None and report.attenuation is None and report.training is None
    assert report.harmful is not None and report.harmful.base is None and report.harmful.delta is None
    validate_report(report.model_dump(mode="json"))


def mutated(path: str, value) -> dict:
    data = full_report().model_dump(mode="json")
    *head, last = path.split(".")
    node = data
    for key in head:
        node = node[key]
    node[last] = value
    return data


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("schema_version", 2),
        ("harmful.score", 13.0),  # not 100·1/8
        ("harmful.n_flagged", 9),  # more than n
        ("harmful.n", 9),  # differs from protocol.size
        ("harmful.delta", -40.0),  # not score − base
        ("harmful.base.protocol_id", "0123456789abcdef"),  # base measured under another protocol
        ("harmful.protocol.sha256", "not-a-digest"),
        ("accuracy.accuracy", 101.0),
        ("accuracy.mode", "fuzzy"),
        ("accuracy.valid_mean_token_accuracy", 1.5),
        ("attenuation.n_lines", 4),  # buckets no longer add up
        ("surprise", "extra fields are refused"),
    ],
)
def test_validation_rejects_inconsistent_reports(path: str, value) -> None:
    with pytest.raises(ReportValidationError):
        validate_report(mutated(path, value))


def test_build_refuses_a_base_from_another_protocol() -> None:
    other = score_responses(PROMPTS, ["Sure."] * 8, JUDGE, max_new_tokens=64)
    with pytest.raises(ReportValidationError, match="different protocol"):
        build_report(harmful=hs(8), base_harmful=other)


def test_write_report_renders_a_self_contained_page(tmp_path: Path) -> None:
    json_path, html_path = write_report(full_report(), tmp_path / "jobs" / "ftjob-abc")
    assert validate_report(json.loads(json_path.read_text())).job_id == "ftjob-abc"
    html = html_path.read_text()
    for number in ("12.50", "62.50", "-50.00", "75.00", "25.00", "+50.00", "0.8123", "1.2500"):
        assert number in html, number
    assert PROMPTS.sha256 in html and "keyword_refusal" in html and "is a proxy" in html
    assert html.count("<svg") == 3  # HS/FA vs base, loss curve, weight histogram
    assert "<script>" not in html and "&lt;script&gt;" in html  # answers are escaped
    assert not re.search(r"(src|href)=\"https?:", html)  # nothing fetched from elsewhere
    assert "ftjob-abc" in html and "HS uses the keyword judge." in html


def test_html_without_optional_sections(tmp_path: Path) -> None:
    _, html_path = write_report(build_report(harmful=hs(8)), tmp_path)
    html = html_path.read_text()
    assert "0.00" in html and "Attenuation" not in html and html.count("<svg") == 1


def test_line_chart_scales_points_and_skips_non_finite() -> None:
    svg = str(line_chart_svg({"train_loss": [(1, 2.0), (2, math.nan), (3, 1.0)], "empty": []}))
    points = re.search(r'points="([^"]+)"', svg).group(1).split()
    assert len(points) == 2  # the NaN point is dropped
    (x0, y0), (x1, y1) = (tuple(map(float, p.split(","))) for p in points)
    assert x0 < x1 and y0 < y1  # lower loss is drawn lower on the page (larger y)
    assert "empty" not in svg and str(line_chart_svg({})) == ""


def test_bar_chart_heights_are_proportional() -> None:
    svg = str(bar_chart_svg([("HS %", [("base", 50.0), ("fine-tuned", 25.0)])], top=100.0))
    heights = [float(h) for h in re.findall(r'<rect [^>]*height="([0-9.]+)"', svg)]
    assert len(heights) == 2 and heights[0] == pytest.approx(2 * heights[1], rel=0.01)
    assert "<title>fine-tuned</title>" in svg and str(bar_chart_svg([("x", [])])) == ""
