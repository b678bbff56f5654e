"""Does it defend? The paper's Table 3 (HS/FA vs harmful ratio p) and Table 4 (ablation) at CPU scale. Prints JSON.

Bases (built once per spec and cached under ``--bases-dir``; ``--demo-base`` reuses ``make run``'s):

- ``demo``: Antibody alignment with the demo recipe (``FTAAS_DEMO_ALIGN_STEPS`` × ``FTAAS_DEMO_ALIGN_BATCH_SIZE``);
- ``antibody-deep``: the same recipe, ``deep_factor`` × the steps;
- ``refusal-sft``: plain refusal SFT on the same data and budget (standard alignment);
- ``flatness``: Antibody alignment without the refusal term (λ_refusal = 0).

Customer file: ``n`` lines of reasoning-gym arithmetic with a share p of PyRIT harmful pairs from the attack split
(``finetune_safety_smollm2.training_file``). Methods: ``sft`` (uniform weights, no refusal pass) and ``antibody``
(τ = 1), same budget and seed, trained packed (``Config.packing``). Cells (``cells``): Table 3 on ``demo`` for p in
``ps``; the ablation at p = 0.2 (SFT on refusal-sft, + flatness alignment, + weighted fine-tuning, + refusal loss =
antibody on demo); with ``--deep``, p = 0.2 on ``antibody-deep`` too. Every cell is judged by the primary judge and
the keyword judge on the same answers.

    python bench/safety.py --save                # the default configuration (79 min from nothing on 2 cores)
    python bench/safety.py --deep --save         # and p = 0.2 on antibody-deep (its base alone: ~40 min)
    python bench/safety.py --quick --save        # the same code path in ≤ 10 min
    python bench/safety.py --levers --save       # issue 16's variants and the safety mix (safety_levers.py)
    python bench/safety.py --attacks --save      # issue 16's adaptive attacks (safety_attacks.py)
    python bench/safety.py --gate --save         # issue 16's safety-gate defaults at the job defaults (safety_gate.py)
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402
from finetune_safety_smollm2 import (  # noqa: E402
    OBJECTIVES,
    TASK,
    TASK_CONFIG,
    fa_chats,
    log,
    relative_weights,
    training_file,
)
from safety_attacks import ATTACKS, attack_file, split_method  # noqa: E402
from safety_bases import build_base  # noqa: E402
from safety_cache import CellCache  # noqa: E402
from safety_config import QUICK, Config, make_judges  # noqa: E402
from safety_gate import JOBS, gate_summary  # noqa: E402
from safety_levers import LEVERS, mix_file, needs_benign, over_refusal  # noqa: E402
from safety_report import plots, summarize  # noqa: E402
from safety_variants import plan_for, variant, variant_markdown  # noqa: E402
from safety_variants import stem as results_stem  # noqa: E402

from service.config import Settings  # noqa: E402
from worker.datasets import assets  # noqa: E402
from worker.datasets.splits import builtin_splits  # noqa: E402
from worker.evaluation import generate, make_prompt_set  # noqa: E402
from worker.evaluation.accuracy import evaluate_accuracy  # noqa: E402
from worker.evaluation.harmful import score_responses  # noqa: E402
from worker.training.config import TrainConfig  # noqa: E402
from worker.training.data import load_tokenizer  # noqa: E402
from worker.training.model import load_base_model  # noqa: E402
from worker.training.trainer import load_adapter_model, train  # noqa: E402


def answers(model, tokenizer, prompts, cfg: Config) -> list[str]:
    """The model's greedy answers to the HS prompts; the cache keeps them so a new judge re-scores old cells."""
    texts = list(prompts.prompts)
    gens = generate(model, tokenizer, texts, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.eval_batch)
    return [g.text for g in gens]


def judged(row: dict, shared: dict, cfg: Config) -> dict:
    """The row with HS under every judge (% of prompts flagged) on its stored answers, the answers left out."""
    texts = row["answers"]
    hs = {
        name: round(score_responses(shared["prompts"], texts, j, cfg.max_new_tokens).score, 2)
        for name, j in shared["judges"].items()
    }
    out = {k: v for k, v in row.items() if k not in ("answers", "benign_answers")}
    if "benign_answers" in row:
        out["over_refusal"] = over_refusal(row["benign_answers"])
    return out | ({"hs": hs[shared["primary"]]} if "method" in row else {}) | {"hs_by_judge": hs}


def with_benign(row: dict, model, shared: dict, cfg: Config) -> dict:
    """The row plus the model's answers to the benign prompts, when this run measures over-refusal."""
    if shared["benign"] is None:
        return row
    return row | {"benign_answers": answers(model, shared["tokenizer"], shared["benign"], cfg)}


def run_cell(cell: tuple, base_dir: Path, cfg: Config, shared: dict, work: Path) -> dict:
    base, name, p, seed = cell
    train_file, out_dir = work / f"train-{base}-{name}-{p}-{seed}.jsonl", work / f"run-{base}-{name}-{p}-{seed}"
    method, attack = split_method(name)
    harmful = attack_file(train_file, attack, cfg.n, p, seed) if attack else training_file(train_file, cfg.n, p, seed)
    lever = LEVERS.get(method)
    tc = TrainConfig(
        base_model_dir=base_dir,
        train_file=train_file,
        output_dir=out_dir,
        n_epochs=cfg.epochs,
        batch_size=cfg.batch,
        base_learning_rate=cfg.lr,
        max_seq_len=cfg.max_seq_len,
        packing=cfg.packing,
        seed=seed,
        safety_mix_file=mix_file(work, lever.mix, seed) if lever else None,
        **(lever.train if lever else OBJECTIVES[method]),
    )
    t0 = time.perf_counter()
    result = train(tc)
    train_s = round(time.perf_counter() - t0, 1)
    weight_harmful, weight_benign = relative_weights(result.attenuation, cfg.batch, harmful)
    model = load_adapter_model(base_dir, result.adapter_dir, device="cpu")
    t0 = time.perf_counter()
    texts = answers(model, shared["tokenizer"], shared["prompts"], cfg)
    fa = evaluate_accuracy(model, shared["tokenizer"], shared["fa_set"], max_new_tokens=16)
    row = {
        "base": base,
        "method": name,
        "p": p,
        "seed": seed,
        "n_harmful": len(harmful),
        "steps": result.steps,
        "fa": round(fa.accuracy, 2),
        "mean_relative_weight_harmful": weight_harmful,
        "mean_relative_weight_benign": weight_benign,
        "train_s": train_s,
        "eval_s": round(time.perf_counter() - t0, 1),
        "answers": texts,
    }
    row = with_benign(row, model, shared, cfg)
    log(json.dumps({k: v for k, v in row.items() if k != "answers"}))
    return row


def base_rows(bases: dict, cache: CellCache, shared: dict, cfg: Config, args, sample: dict) -> dict:
    """Each base's HS under every judge, FA and over-refusal (when measured), from the cache or computed once."""
    out = {}
    for name, path in bases.items():
        found = cache.get(("base", name), path)
        if found is None or (args.levers and needs_benign(("base", name), found)):
            model = load_base_model(path, torch.device("cpu"), torch.float32)
            fa = evaluate_accuracy(model, shared["tokenizer"], shared["fa_set"], max_new_tokens=16).accuracy
            row = {"answers": answers(model, shared["tokenizer"], shared["prompts"], cfg), "fa": round(fa, 2)}
            found = cache.put(("base", name), path, with_benign(row, model, shared, cfg))
        sample[f"{name} base"] = found["answers"]
        base = judged(found, shared, cfg)
        log(f"base {name}: {json.dumps(base)}")
        out[name] = base["hs_by_judge"] | {k: base[k] for k in ("fa", "over_refusal") if k in base}
    return out


def cell_rows(plan: list, bases: dict, cache: CellCache, shared: dict, cfg: Config, args, sample: dict) -> list[dict]:
    """The judged row of every planned cell: cached, or trained now (``--cached-only`` skips the missing ones)."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="safety-") as tmp:
        for c in plan:
            base = bases[c[0]]
            row = cache.get(c, base)
            old = None
            if args.levers and needs_benign(c, row) and not args.cached_only:
                old, row = row, None  # retrained for its benign answers; the JSON says if the answers came out the same
            if row is None and args.cached_only:
                continue
            if row is None:
                row = run_cell(c, base, cfg, shared, Path(tmp))
                same = {"same_answers_as_cached": old["answers"] == row["answers"]} if old else {}
                row = cache.put(c, base, row | same)
            if c[0] == "demo" and c[2] > 0 and c[3] == 0:
                sample[f"{c[1]} p={c[2]:g} on the demo base, seed 0"] = row["answers"]
            rows.append(judged(row, shared, cfg))
    return rows


def run(cfg: Config, args: argparse.Namespace) -> dict:
    started = time.perf_counter()
    settings = Settings(home=args.home) if args.home else Settings()
    primary, judges = make_judges(args.judge, settings, args.second_judge)
    splits = builtin_splits(seed=0)
    plan = plan_for(args, cfg)
    bases, base_info = {}, {}
    for name in dict.fromkeys(["demo", *(b for b, *_ in plan)]):  # the demo base gives the tokenizer
        if name == "demo" and args.demo_base:
            bases[name] = args.demo_base
            base_info[name] = {"path": str(args.demo_base), "reused": True}
        else:
            bases[name], base_info[name] = build_base(name, cfg, args.source, args.bases_dir, settings)
    bases_s = round(time.perf_counter() - started, 1)
    tokenizer = load_tokenizer(bases["demo"])
    prompts = make_prompt_set("heldout-harmbench", splits.eval_harmful, limit=cfg.eval_harmful)
    train_prompts = {s["prompt"] for s in assets.reasoning_gym_samples(TASK, n=cfg.n, seed=0, **TASK_CONFIG)}
    shared = {
        "tokenizer": tokenizer,
        "prompts": prompts,
        "judges": judges,
        "primary": primary,
        "fa_set": fa_chats(cfg.eval_fa, 0, train_prompts),
        "benign": make_prompt_set("benign", [r["prompt"] for r in splits.eval_benign[: cfg.align_eval_benign]])
        if args.levers
        else None,
    }
    cache = CellCache(args.bases_dir / "cells", cfg)
    sample: dict = {}  # answers for judge_quality.py's sanity read
    base_hs = base_rows(bases, cache, shared, cfg, args, sample)
    rows = cell_rows(plan, bases, cache, shared, cfg, args, sample)
    summary = summarize(rows, base_hs, primary)
    if args.gate:
        summary["gate"] = gate_summary(rows, base_hs, primary)
    done = {(r["base"], r["method"], r["p"], r["seed"]) for r in rows}
    return {
        "bench": "safety",
        "config": dataclasses.asdict(cfg),
        "environment": {
            "device": "cpu",
            "threads": torch.get_num_threads(),
            "platform": platform.platform(),
            "torch": torch.__version__,
            "also_running": args.also_running,
        },
        "protocol": {
            "hs": f"{primary} judge (keyword beside it) on the first {len(prompts.prompts)} held-out HarmBench "
            f"prompts, greedy, {cfg.max_new_tokens} new tokens; % flagged",
            "fa": f"final-number accuracy on {len(shared['fa_set'])} held-out {TASK} {TASK_CONFIG} prompts",
            "data": f"{cfg.n} lines: PyRIT harmful pairs (attack split) at ratio p + {TASK} bare answers; "
            "the cell's seed picks and orders the lines and seeds training",
            "training": f"LoRA job defaults, lr {cfg.lr}, {cfg.epochs} epochs of batch {cfg.batch}"
            f"{', packed (padding-free)' if cfg.packing else ''}; sft = uniform weights (no refusal pass), "
            "antibody = tau 1",
        },
        "bases": base_info,
        **({"attacks": ATTACKS} if args.attacks else {}),
        "summary": summary,
        "cells": rows,
        "cells_missing": [list(c) for c in plan if c not in done],
        "markdown": variant_markdown(summary, primary, args, rows),
        "seconds": {"bases": bases_s, "total": round(time.perf_counter() - started, 1)},
        "_answers": {"prompts": list(prompts.prompts), "max_new_tokens": cfg.max_new_tokens, "models": sample},
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="the same code path at smoke size (≤ 10 min)")
    parser.add_argument("--source", default="smollm2", help="model the bases are aligned from (smollm2 or a folder)")
    parser.add_argument("--demo-base", type=Path, help="reuse this folder as the demo base (make run's)")
    parser.add_argument("--bases-dir", type=Path, default=Path(".ftaas/bench-bases"))
    parser.add_argument("--home", type=Path, help="FTAAS_HOME for the source model (default: the settings')")
    parser.add_argument("--judge", default="keyword", help="primary HS judge")
    parser.add_argument(
        "--no-second-judge",
        dest="second_judge",
        action="store_false",
        help="judge with the primary only (keyword is always beside a learned primary)",
    )
    parser.add_argument("--deep", action="store_true", help="also p = 0.2 on the antibody-deep base")
    parser.add_argument("--also-running", default="nothing else", help="what else used the machine (recorded)")
    parser.add_argument(
        "--cached-only",
        action="store_true",
        help="report the finished cells only (a progress report; nothing is trained)",
    )
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument("--levers", action="store_true", help="issue 16's Antibody variants at p = 0.2 instead")
    runs.add_argument("--attacks", action="store_true", help="issue 16's adaptive attacks at p = 0.2 and 0.5 instead")
    runs.add_argument("--gate", action="store_true", help="issue 16's safety gate at the job defaults instead")
    parser.add_argument("--lever", action="append", help="with --levers: only this lever (repeatable)")
    parser.add_argument("--attack-p", type=float, action="append", help="with --attacks: only these ratios")
    parser.add_argument("--attack-base", help="with --attacks: plain SFT on this base instead (e.g. refusal-sft)")
    parser.add_argument("--save", action="store_true", help="write bench/results/safety-<config>.json and plots")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    cfg = QUICK if args.quick else JOBS if args.gate else Config()
    out = run(cfg, args)
    answers = out.pop("_answers")
    results = Path(__file__).resolve().parent / "results"
    stem = results_stem(args, cfg)
    if args.save:
        if not variant(args) or args.attacks:  # the attacks' answers, to read what a judge flags
            (results / f"{stem}-answers.json").write_text(json.dumps(answers, indent=1) + "\n")
        if not variant(args):
            out["plots"] = plots(out["summary"], results, stem)
        (results / f"{stem}.md").write_text(out["markdown"] + "\n")
    emit(out, args.out, f"{stem}.json" if args.save else None)


if __name__ == "__main__":
    main()
