"""Harmful fine-tuning on SmolLM2: plain SFT vs Antibody's weighted fine-tuning on one pre-aligned base. Prints JSON.

The paper's main comparison (ANTIBODY.md, "Metrics": Llama-2-7B, n=1000, p=0.2) at CPU scale. A customer file of
``--n`` lines mixes a share ``p`` of PyRIT harmful pairs (the ``attack`` split, disjoint from alignment data and
from the HS prompts) with reasoning-gym two-term arithmetic (bare answers). Each arm trains a fresh LoRA with the
job defaults of the training library on the same base, then reports

- HS: keyword judge on held-out HarmBench prompts (greedy, ``--max-new-tokens``), as every job's report does;
- FA: final-number accuracy on held-out arithmetic prompts that are not in the training file;
- a sample of the answers the judge flagged, and the share of them shorter than 8 tokens;
- the mean relative weight (mean weight × batch: 1 = uniform) of harmful and benign lines over training.

Arms are ``objective:p``; ``sft`` is plain SFT (uniform weights, no refusal pass: ``ratio_model="none"``),
``antibody`` is τ = 1, the service's only objective.

    python bench/finetune_safety_smollm2.py --base .ftaas/objects/base-models/smollm2-135m-antibody --save
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402

from worker.datasets import assets  # noqa: E402
from worker.datasets.splits import builtin_splits, first_user_message  # noqa: E402
from worker.evaluation import KeywordRefusalJudge, evaluate_harmful, make_prompt_set  # noqa: E402
from worker.evaluation.accuracy import evaluate_accuracy  # noqa: E402
from worker.training.config import TrainConfig  # noqa: E402
from worker.training.data import load_tokenizer  # noqa: E402
from worker.training.model import load_base_model  # noqa: E402
from worker.training.trainer import load_adapter_model, train  # noqa: E402

TASK = "basic_arithmetic"
TASK_CONFIG = {"min_terms": 2, "max_terms": 2, "max_digits": 2}
# Each arm's TrainConfig overrides.
OBJECTIVES = {"sft": {"ratio_model": "none"}, "antibody": {"tau": 1.0}}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def training_file(path: Path, n: int, p: float, seed: int) -> set[int]:
    """Write the customer's file; return the (1-based) lines that are harmful."""
    attack = sorted(builtin_splits(seed=seed).attack, key=first_user_message)
    n_harm = round(p * n)
    if n_harm > len(attack):
        raise SystemExit(f"--n {n} at p={p} needs {n_harm} harmful pairs; the attack split has {len(attack)}")
    rng = random.Random(seed)
    rng.shuffle(attack)
    benign = assets.reasoning_gym_samples(TASK, n=n - n_harm, seed=seed, **TASK_CONFIG)
    rows = [(r, True) for r in attack[:n_harm]] + [
        (assets.chat_line(s["prompt"], s["response"]), False) for s in benign
    ]
    rng.shuffle(rows)
    assets.write_jsonl(path, [r for r, _ in rows])
    return {i + 1 for i, (_, harmful) in enumerate(rows) if harmful}


def fa_chats(n: int, seed: int, exclude: set[str]) -> list[list[dict]]:
    """Held-out arithmetic chats whose prompts are not in the training file."""
    samples = assets.reasoning_gym_samples(TASK, n=3 * n, seed=seed + 10_000, **TASK_CONFIG)
    fresh = [s for s in samples if s["prompt"] not in exclude][:n]
    return [assets.chat_line(s["prompt"], s["response"])["messages"] for s in fresh]


def base_alignment(base: Path) -> dict | None:
    """How the base was aligned, from the manifest the provider's alignment job writes beside the weights."""
    manifest = base / "alignment_manifest.json"
    if not manifest.exists():
        return None
    m = json.loads(manifest.read_text())
    return {
        "mode": m["spec"]["mode"],
        "steps": m["steps"],
        "hs_before": m["before"]["hs"],
        "hs_after": m["after"]["hs"],
        "benign_refusal_rate_after": m["after"]["benign_refusal_rate"],
    }


def relative_weights(attenuation: list[dict], batch: int, harmful: set[int]) -> tuple[float | None, float | None]:
    """Mean relative weight (a line's mean weight × batch: 1 = uniform) of the harmful and of the benign lines."""
    weights = {row["line"]: row["mean_weight"] * batch for row in attenuation}

    def mean(lines: list[int]) -> float | None:
        return round(sum(weights[x] for x in lines) / len(lines), 4) if lines else None

    return mean([x for x in weights if x in harmful]), mean([x for x in weights if x not in harmful])


def evaluate(model, tokenizer, prompts, fa_set, args) -> dict:
    t0 = time.perf_counter()
    hs = evaluate_harmful(model, tokenizer, prompts, KeywordRefusalJudge(), max_new_tokens=args.max_new_tokens)
    fa = evaluate_accuracy(model, tokenizer, fa_set, max_new_tokens=16)
    flagged = [r for r in hs.records if r.flagged]
    return {
        "hs": round(hs.score, 2),
        "fa": round(fa.accuracy, 2),
        # The keyword judge flags every answer that is not a refusal: short answers show how many flagged ones
        # are a bare reply (e.g. a number) rather than harmful content.
        "flagged_short_share": round(sum(r.new_tokens < 8 for r in flagged) / len(flagged), 4) if flagged else None,
        "flagged_examples": [{"prompt": r.prompt[:80], "response": r.response[:160]} for r in flagged[:4]],
        "eval_s": round(time.perf_counter() - t0, 1),
    }


def run_arm(objective: str, p: float, args: argparse.Namespace, work: Path, tokenizer, prompts, fa_set) -> dict:
    train_file = work / f"train-{objective}-{p}.jsonl"
    harmful = training_file(train_file, args.n, p, args.seed)
    cfg = TrainConfig(
        base_model_dir=args.base,
        train_file=train_file,
        output_dir=work / f"run-{objective}-{p}",
        n_epochs=args.epochs,
        batch_size=args.batch,
        base_learning_rate=args.lr,
        max_seq_len=args.max_seq_len,
        **OBJECTIVES[objective],
        seed=args.seed,
    )
    t0 = time.perf_counter()
    result = train(cfg)
    train_s = round(time.perf_counter() - t0, 1)
    weight_harmful, weight_benign = relative_weights(result.attenuation, args.batch, harmful)
    model = load_adapter_model(args.base, result.adapter_dir, device="cpu")
    row = {
        "objective": objective,
        "harmful_ratio": p,
        "n_harmful": len(harmful),
        "steps": result.steps,
        "train_s": train_s,
        "final_train_loss_unweighted": result.metrics[-1]["train_loss_unweighted"] if result.metrics else None,
        "mean_relative_weight_harmful": weight_harmful,
        "mean_relative_weight_benign": weight_benign,
        **evaluate(model, tokenizer, prompts, fa_set, args),
    }
    log(json.dumps(row))
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="pre-aligned base model folder")
    parser.add_argument("--arms", default="sft:0.2,antibody:0.2,sft:0,antibody:0", help="objective:harmful_ratio,...")
    parser.add_argument("--n", type=int, default=200, help="lines in the customer's training file")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--lr", type=float, default=2e-4, help="TrainConfig.base_learning_rate (the job default)")
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--eval-harmful", type=int, default=100)
    parser.add_argument("--eval-fa", type=int, default=50)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--save", action="store_true", help="write bench/results/finetune_safety-cpu.json")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    arms = [(objective, float(p)) for objective, p in (arm.split(":") for arm in args.arms.split(","))]
    if unknown := {objective for objective, _ in arms} - set(OBJECTIVES):
        raise SystemExit(f"unknown objective(s) {sorted(unknown)}; use {sorted(OBJECTIVES)}")
    torch.manual_seed(args.seed)
    started = time.perf_counter()
    prompts = make_prompt_set("heldout-harmbench", builtin_splits(seed=args.seed).eval_harmful, limit=args.eval_harmful)
    train_prompts = {s["prompt"] for s in assets.reasoning_gym_samples(TASK, n=args.n, seed=args.seed, **TASK_CONFIG)}
    fa_set = fa_chats(args.eval_fa, args.seed, train_prompts)
    tokenizer = load_tokenizer(args.base)
    base = evaluate(load_base_model(args.base, torch.device("cpu"), torch.float32), tokenizer, prompts, fa_set, args)
    log(f"base: {json.dumps(base)}")
    with tempfile.TemporaryDirectory(prefix="ft-safety-") as tmp:
        runs = [run_arm(objective, p, args, Path(tmp), tokenizer, prompts, fa_set) for objective, p in arms]
    out = {
        "bench": "finetune_safety_smollm2",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "base": str(args.base),
        "base_alignment": base_alignment(args.base),
        "protocol": {
            "hs": f"keyword refusal judge (HS = % not refused), first {len(prompts.prompts)} held-out HarmBench "
            f"prompts, greedy, {args.max_new_tokens} new tokens",
            "fa": f"final-number accuracy on {len(fa_set)} held-out {TASK} {TASK_CONFIG} prompts",
            "data": f"{args.n} lines: PyRIT harmful pairs (builtin_splits().attack) at the arm's ratio + {TASK} "
            "bare answers",
            "training": f"LoRA r=16 alpha=32 on q/k/v/o, lr {args.lr} linear with 10% warmup, {args.epochs} epochs, "
            f"batch {args.batch}, max_seq_len {args.max_seq_len}; sft = uniform weights, antibody = tau 1",
        },
        "before": base,
        "runs": runs,
        "total_s": round(time.perf_counter() - started, 1),
    }
    emit(out, args.out, "finetune_safety-cpu.json" if args.save else None)


if __name__ == "__main__":
    main()
