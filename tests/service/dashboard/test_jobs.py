"""The safety-gate verdict the job page shows, from the job row, the report and the provider's limits."""

from __future__ import annotations

from pathlib import Path

from service.config import Settings
from service.dashboard import jobs
from service.fine_tuning.report_schema import EvalReport
from service.orm import JobRow
from tests.service.dashboard.reports import report


def test_the_gate_quotes_the_limits_it_passed_or_the_reason_it_stopped(tmp_path: Path) -> None:
    evaluated = EvalReport.model_validate(report("ftjob-x"))  # HS 12.5%, 12.5 points under the base
    ok = JobRow(id="ftjob-x", status="succeeded", error=None)
    limited = Settings(home=tmp_path, safety_max_hs=20.0, safety_max_hs_increase=5.0)
    verdict = jobs.gate(limited, ok, evaluated)
    assert verdict.verdict == "passed" and "HS 12.5%" in verdict.reason
    assert "HS ≤ 20%" in verdict.reason and "at most 5 points above the base's" in verdict.reason

    error = {"code": "safety_evaluation_failed", "message": "harmful score 30.0% exceeds the provider's limit"}
    stopped = jobs.gate(limited, JobRow(id="ftjob-x", status="failed", error=error), evaluated)
    assert (stopped.verdict, stopped.reason) == ("stopped", error["message"])
    other = jobs.gate(limited, JobRow(id="ftjob-x", status="failed", error={"code": "oom"}), evaluated)
    assert other.verdict == "pending" and "the job is failed" in other.reason
    assert jobs.gate(limited, ok, None).verdict == "pending"
