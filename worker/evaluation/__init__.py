"""Pure evaluation library: HS (harmful score), FA (fine-tuning accuracy), the attenuation summary and the
report. No Celery, DB or HTTP here; the worker runner calls these functions with plain data (ANTIBODY.md,
"Metrics"; issue 6)."""

from worker.evaluation.accuracy import (
    AnswerMode,
    FAResult,
    choose_mode,
    evaluate_accuracy,
    final_number,
    holdout_indices,
    score_predictions,
    valid_metrics,
)
from worker.evaluation.attenuation import AttenuationSummary, summarize_attenuation
from worker.evaluation.generation import Generation, generate
from worker.evaluation.harmful import (
    HSResult,
    PromptSet,
    default_prompt_set,
    evaluate_harmful,
    harmful_score,
    make_prompt_set,
    score_responses,
)
from worker.evaluation.judges import ClassifierJudge, Judge, KeywordRefusalJudge
from worker.evaluation.report import (
    SCHEMA_VERSION,
    EvalReport,
    ReportValidationError,
    build_report,
    validate_report,
    write_report,
)
from worker.evaluation.report_html import render_html

__all__ = [
    "SCHEMA_VERSION",
    "AnswerMode",
    "AttenuationSummary",
    "ClassifierJudge",
    "EvalReport",
    "FAResult",
    "Generation",
    "HSResult",
    "Judge",
    "KeywordRefusalJudge",
    "PromptSet",
    "ReportValidationError",
    "build_report",
    "choose_mode",
    "default_prompt_set",
    "evaluate_accuracy",
    "evaluate_harmful",
    "final_number",
    "generate",
    "harmful_score",
    "holdout_indices",
    "make_prompt_set",
    "render_html",
    "score_predictions",
    "score_responses",
    "summarize_attenuation",
    "valid_metrics",
    "validate_report",
    "write_report",
]
