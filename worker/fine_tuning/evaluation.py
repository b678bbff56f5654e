"""Evaluate a finished job: HS on held-out harmful prompts, FA on validation data, both against the base model,
plus the attenuation summary; writes report.json / report.html. Uses the pure worker.evaluation library.

The base model's HS is cached in the object store per (base model version, protocol) because every job on that base
would otherwise regenerate the same answers.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from service.config import Settings
from service.storage import ObjectNotFound, ObjectStore
from worker.datasets.assets import cache_root
from worker.datasets.splits import builtin_splits
from worker.evaluation import (
    ClassifierJudge,
    KeywordRefusalJudge,
    build_report,
    evaluate_accuracy,
    evaluate_harmful,
    make_prompt_set,
    score_responses,
    summarize_attenuation,
    valid_metrics,
    write_report,
)
from worker.evaluation.harmful import HSResult, protocol
from worker.evaluation.judge_data import builtin_judge_inputs
from worker.evaluation.learned_judge import load_or_train
from worker.progress import log_writer, progress_lines, within
from worker.training.data import load_tokenizer
from worker.training.trainer import load_adapter_model


@dataclass
class JobEvalInputs:
    """``base_*`` is the pre-aligned base model, also for a job that continued from a fine-tuned model or
    checkpoint: the safety gate measures drift from the aligned reference, so a chain of jobs cannot each drift a
    little past its parent until the sum is unsafe. ``adapter_dir`` is the job's whole adapter on that base."""

    job_id: str
    model_name: str
    base_name: str
    base_version: str  # artifacts.base_model_version: a re-aligned base under the same name is a new version
    base_dir: Path
    adapter_dir: Path
    train_file: Path
    eval_file: Path | None  # validation file, or the held-out slice of the training file
    eval_source: str  # "validation_file" | "training_holdout"
    metrics: list[dict[str, Any]]
    attenuation: list[dict[str, Any]]
    fa_mode: str | None = None  # job metadata override: "number" | "label" | "exact"
    safety_mix: int = 0  # the provider's refusal pairs trained beside the file (worker/datasets/safety_mix.py)


@lru_cache(maxsize=1)
def heldout_harmful_prompts() -> tuple[str, ...]:
    """HarmBench prompts disjoint from every alignment and attack prompt (worker.datasets.splits)."""
    return tuple(builtin_splits().eval_harmful)


@lru_cache(maxsize=2)
def _learned_judge(judges_dir: Path) -> Any:
    splits, banned, eval_prompts = builtin_judge_inputs()
    return load_or_train(judges_dir, splits, banned, eval_prompts)


def judges(settings: Settings) -> tuple[Any, Any]:
    """(primary judge, second opinion). The primary decides HS and the gate; both are reported, so a keyword
    HS stays comparable with older reports and the learned one is always there to read against it."""
    def learned() -> Any:  # loaded (or trained, ~2 min the first time) only where it is used
        return _learned_judge(Path(settings.eval_judge_cache or cache_root() / "judges"))

    keyword = KeywordRefusalJudge()
    chosen = learned() if settings.eval_judge == "learned" else keyword
    if settings.eval_judge_dir:
        return ClassifierJudge(settings.eval_judge_dir), chosen
    return chosen, (learned() if chosen is keyword else keyword)


def _chats(path: Path, limit: int) -> list[list[dict[str, Any]]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line)["messages"] for line in fh if line.strip()][:limit]


def rejudge(hs: Any, prompts: Any, judge: Any, max_new_tokens: int) -> Any:
    """The same generated answers under another judge (no generation)."""
    recs = hs.records
    return score_responses(
        prompts, [r.response for r in recs], judge, max_new_tokens,
        finished=[r.finished for r in recs], new_tokens=[r.new_tokens for r in recs],
    )


def _base_hs(
    settings: Settings, store: ObjectStore, inputs: JobEvalInputs, model: Any, tok: Any, prompts: Any,
    judge: Any, second: Any, progress: Any = None,
) -> tuple[Any, Any]:
    """The base model's HS under both judges. The cache key is the primary judge's protocol_id, which hashes
    the judge's name and config (the learned judge's version included): a new judge never reads an old HS."""
    protocol_id = protocol(prompts, judge, settings.eval_max_new_tokens)["protocol_id"]
    key = f"eval-cache/{inputs.base_name}/{inputs.base_version}/{protocol_id}.json"
    try:
        hs = HSResult.from_dict(json.loads(store.get_bytes(key)))
    except ObjectNotFound:
        with model.disable_adapter():  # the base model is the PEFT model without its adapter: no second copy
            hs = evaluate_harmful(
                model, tok, prompts, judge, max_new_tokens=settings.eval_max_new_tokens, progress=progress
            )
        store.put_bytes(key, json.dumps(hs.to_dict()).encode())
    return hs, rejudge(hs, prompts, second, settings.eval_max_new_tokens)


def evaluate_job(settings: Settings, store: ObjectStore, inputs: JobEvalInputs, out_dir: Path) -> Any:
    """Returns the validated EvalReport; report.json and report.html are written to `out_dir`. Minutes of
    generation: the worker's log gets a progress line at least every FTAAS_PROGRESS_INTERVAL_S."""
    with progress_lines(log_writer, settings.progress_interval_s) as lines:
        return _evaluate_job(settings, store, inputs, out_dir, lines)


def _evaluate_job(settings: Settings, store: ObjectStore, inputs: JobEvalInputs, out_dir: Path, lines: Any) -> Any:
    model = load_adapter_model(inputs.base_dir, inputs.adapter_dir)
    tok = load_tokenizer(inputs.base_dir)
    prompts = make_prompt_set("heldout-harmbench", heldout_harmful_prompts(), limit=settings.eval_harmful_prompts)
    judge, second = judges(settings)
    hs = evaluate_harmful(
        model, tok, prompts, judge, max_new_tokens=settings.eval_max_new_tokens, progress=within(lines, "HS")
    )
    base_hs, base_second = _base_hs(
        settings, store, inputs, model, tok, prompts, judge, second, within(lines, "HS of the base model")
    )
    fa = base_fa = valid = base_valid = None
    notes = []
    if inputs.eval_file is not None:
        chats = _chats(inputs.eval_file, settings.eval_fa_max)
        fa_args = dict(mode=inputs.fa_mode, max_new_tokens=settings.eval_max_new_tokens)
        fa = evaluate_accuracy(model, tok, chats, **fa_args, progress=within(lines, "FA"))  # type: ignore[arg-type]
        valid = valid_metrics(model, tok, chats, max_seq_len=settings.max_seq_len)
        with model.disable_adapter():
            base_fa = evaluate_accuracy(  # type: ignore[arg-type]
                model, tok, chats, **fa_args, progress=within(lines, "FA of the base model")
            )
            base_valid = valid_metrics(model, tok, chats, max_seq_len=settings.max_seq_len)
    else:
        notes.append("No FA: the job has no validation file and too few examples to hold some out.")
    if inputs.eval_source == "training_holdout":
        notes.append("FA is measured on a held-out slice of the training file that was not trained on.")
    if inputs.safety_mix:
        notes.append(
            f"{inputs.safety_mix} of the provider's refusal pairs were trained beside the file (the safety mix); "
            "the attenuation table covers the file's lines only."
        )
    report = build_report(
        harmful=hs,
        base_harmful=base_hs,
        harmful_second=rejudge(hs, prompts, second, settings.eval_max_new_tokens),
        base_harmful_second=base_second,
        accuracy=fa,
        accuracy_source=inputs.eval_source,
        valid=valid,
        base_accuracy=base_fa,
        base_valid=base_valid,
        metrics=inputs.metrics,
        attenuation=summarize_attenuation(inputs.attenuation, inputs.train_file),
        job_id=inputs.job_id,
        model=inputs.model_name,
        base_model=inputs.base_name,
        notes=notes,
    )
    write_report(report, out_dir)
    return report


def safety_verdict(settings: Settings, report: Any) -> str | None:
    """Why the result must not be deployed, or None. Thresholds are the provider's (FTAAS_SAFETY_*)."""
    hs = report.harmful
    if hs is None:
        return None
    if settings.safety_max_hs is not None and hs.score > settings.safety_max_hs:
        return f"harmful score {hs.score:.1f}% exceeds the provider's limit of {settings.safety_max_hs:.1f}%"
    if (
        settings.safety_max_hs_increase is not None
        and hs.delta is not None
        and hs.delta > settings.safety_max_hs_increase
    ):
        return (
            f"harmful score rose {hs.delta:.1f} points over the base model ({hs.base.score:.1f}% → "
            f"{hs.score:.1f}%), above the provider's limit of {settings.safety_max_hs_increase:.1f}"
        )
    return None
