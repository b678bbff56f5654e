"""Pre-screen quality on SmolLM2 (issue 6, demonstration item 4). Prints JSON.

mix A: 20% PyRIT harmful pairs (the ``attack`` split, disjoint from alignment data) + 80% reasoning-gym samples
        → precision of harmful lines among the top 20% by lowest r (goal ≥ 0.8), and AUROC.
mix B: PyRIT harmful pairs + natural-prose benign answers to everyday instructions (bench/data/everyday_prose.jsonl)
        → AUROC harmful-vs-benign when ranking by lowest r and by lowest plain per-token log-likelihood log π(y|x)/N.
mix C: mix A's shape, but a quarter of the benign lines are harmful prompts answered with a refusal (safety data a
        customer may well include; the refusal wording is held out from alignment's, bench/data/heldout_refusals.txt)
        → whether a prompt-level signal (refusal onset) flags safe lines.

Besides r and the log-likelihood every mix reports the refusal onset (prompt-level) and the **onset ratio**
log π(y|x)/N − onset: r's form with the refusal term replaced by how likely the base is to start refusing.

Models: ``--base DIR`` screens that folder (e.g. a registered pre-aligned base model). Without it the raw
SmolLM2-135M-Instruct is screened and, unless ``--align-steps 0``, also a copy aligned here by a short refusal
alignment (``worker.training.alignment``, mode ``--align-mode``; data: ``builtin_splits().align``), merged.

    python bench/prescreen_smollm2.py --save                   # raw + 40-step refusal-SFT aligned, ~10 min CPU
    python bench/prescreen_smollm2.py --base ~/.ftaas/work/base-models/smollm2-aligned
"""

from __future__ import annotations

import argparse
import json
import platform
import random
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from common import emit  # noqa: E402

from worker.datasets import assets  # noqa: E402
from worker.datasets.splits import builtin_splits, first_user_message  # noqa: E402
from worker.evaluation.prescreen import auroc, screen_file  # noqa: E402

# Hand-written everyday instructions with prose answers (40 chats): benign text that is as "unformulaic" as
# the harmful answers, unlike reasoning-gym's worked solutions.
BENIGN_PROSE = Path(__file__).parent / "data" / "everyday_prose.jsonl"
HELDOUT_REFUSALS = Path(__file__).parent / "data" / "heldout_refusals.txt"


def read_refusals(path: Path) -> list[str]:
    """A refusal set: one refusal per non-blank line."""
    return [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mixes(seed: int, n_a: int, n_b_harm: int) -> dict[str, list[tuple[dict, bool, str]]]:
    """Deterministic mixes of (chat record, is_harmful, source). Harmful lines come from the attack split; mix A
    and mix B use different harmful pairs. The source ("harmful", a reasoning-gym task, "everyday_prose") says
    which kind of benign line a false positive is."""
    attack = builtin_splits(seed=seed).attack
    rng = random.Random(seed)
    attack = sorted(attack, key=lambda r: first_user_message(r))
    rng.shuffle(attack)
    n_harm_a = round(0.2 * n_a)
    n_benign_a = n_a - n_harm_a
    rg = assets.reasoning_gym_samples("gsm_symbolic", n=n_benign_a // 2, seed=seed + 7)
    rg += assets.reasoning_gym_samples("basic_arithmetic", n=n_benign_a - len(rg), seed=seed + 7)
    mix_a = [(r, True, "harmful") for r in attack[:n_harm_a]]
    mix_a_benign = [(assets.chat_line(s["prompt"], s["response"]), False, s["task"]) for s in rg]
    mix_a += mix_a_benign
    prose = BENIGN_PROSE.read_text(encoding="utf-8").splitlines()
    mix_b = [(r, True, "harmful") for r in attack[n_harm_a : n_harm_a + n_b_harm]]
    mix_b += [(json.loads(line), False, "everyday_prose") for line in prose]
    used = n_harm_a + n_b_harm
    refusals = read_refusals(HELDOUT_REFUSALS)
    refused = [
        (assets.chat_line(first_user_message(r), refusals[i % len(refusals)]), False, "harmful_prompt_refused")
        for i, r in enumerate(attack[used + n_harm_a : used + 2 * n_harm_a])
    ]
    mix_c = [(r, True, "harmful") for r in attack[used : used + n_harm_a]]
    mix_c += refused + [x for i, x in enumerate(mix_a_benign) if i % 4 != 3]  # both tasks alike, 60 of 80
    for mix in (mix_a, mix_b, mix_c):
        rng.shuffle(mix)
    return {"A_reasoning_gym": mix_a, "B_everyday_prose": mix_b, "C_with_refusals": mix_c}


def evaluate(result: dict, harmful_lines: set[int], sources: dict[int, str]) -> dict:
    rows = {row["line"]: row for row in result["rows"] if row["r"] is not None}
    harm = [rows[line] for line in rows if line in harmful_lines]
    benign = [rows[line] for line in rows if line not in harmful_lines]
    n_top = len(result["suspected_lines"])

    def seq_loglik(row: dict) -> float:
        # A control for the sequence ratio, which grows with length: the summed log-likelihood.
        return row["logp_mean"] * row["n_tokens"]

    def precision(ranking: list[int]) -> float:
        return round(sum(line in harmful_lines for line in ranking[:n_top]) / n_top, 4)

    def separation(suspicion: Callable[[dict], float]) -> float:
        """AUROC harmful-vs-benign when ranking by ``suspicion`` (higher = more suspect)."""
        return round(auroc([suspicion(h) for h in harm], [suspicion(b) for b in benign]), 4)

    def mean(xs: list[float]) -> float:
        return round(sum(xs) / len(xs), 4) if xs else float("nan")

    return {
        "n": len(rows),
        "n_harmful": len(harm),
        "top_k": n_top,
        "suspected_by": result["suspected_by"],
        "precision_top_suspected": precision(result["suspected_lines"]),
        "precision_top_by_r": precision(result["ranking_by_ratio"]),
        "precision_top_by_loglik": precision(result["ranking_by_loglik"]),
        "precision_top_by_refusal_onset": precision(result["ranking_by_refusal_onset"]),
        "precision_top_by_onset_ratio": precision(result["ranking_by_onset_ratio"]),
        "precision_top_by_sequence_loglik": precision(sorted(rows, key=lambda line: (seq_loglik(rows[line]), line))),
        "top_suspected_sources": dict(Counter(sources[line] for line in result["suspected_lines"]).most_common()),
        "top_by_r_sources": dict(Counter(sources[line] for line in result["ranking_by_ratio"][:n_top]).most_common()),
        # Harmful lines are suspected for *low* r and log-likelihoods, hence the minus signs.
        "auroc_by_r": separation(lambda row: -row["r"]),
        "auroc_by_loglik": separation(lambda row: -row["logp_mean"]),
        "auroc_by_sequence_loglik": separation(lambda row: -seq_loglik(row)),
        "auroc_by_length": separation(lambda row: row["n_tokens"]),
        "auroc_by_refusal_onset": separation(lambda row: row["refusal_onset"]),
        "auroc_by_onset_ratio": separation(lambda row: -row["onset_ratio"]),
        "mean_r_harmful": mean([h["r"] for h in harm]),
        "mean_r_benign": mean([b["r"] for b in benign]),
        "mean_loglik_harmful": mean([h["logp_mean"] for h in harm]),
        "mean_loglik_benign": mean([b["logp_mean"] for b in benign]),
        "mean_relative_weight_harmful": mean([h["relative_weight"] for h in harm]),
        "mean_relative_weight_benign": mean([b["relative_weight"] for b in benign]),
        "attenuated_share": round(result["attenuated_share"], 4),
        "harmful_share": round(len(harm) / len(rows), 4),
    }


def align_here(work: Path, steps: int, batch: int, mode: str, benign_fraction: float, seed: int) -> Path:
    """A short refusal alignment of raw SmolLM2, merged: the CPU stand-in for a provider's pre-aligned base."""
    from worker.training.alignment import AlignConfig, align, merge_adapter

    files = builtin_splits(seed=seed, benign_fraction=benign_fraction).write(work / "align-data")
    cfg = AlignConfig(
        base_model_dir=assets.smollm2_dir(),
        align_file=files["align"],
        harm_file=files["harm"],
        refusal_file=files["refusal"],
        output_dir=work / "align-run",
        mode=mode,  # type: ignore[arg-type]
        max_steps=steps,
        batch_size=batch,
        learning_rate=5e-4,
        lora_rank=16,
        lora_alpha=32.0,
        max_seq_len=128,
        seed=seed,
    )
    result = align(cfg)
    return merge_adapter(assets.smollm2_dir(), result.adapter_dir, work / "aligned")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, help="screen this HF model folder (e.g. a pre-aligned base model)")
    parser.add_argument("--align-steps", type=int, default=40, help="without --base: also align here (0 = off)")
    parser.add_argument("--align-batch", type=int, default=8)
    parser.add_argument("--align-mode", choices=["sft", "antibody"], default="sft")
    parser.add_argument(
        "--align-benign-fraction",
        type=float,
        default=0.5,
        help="share of benign reasoning-gym (prompt, answer) pairs in D_align (0 = refusals only)",
    )
    parser.add_argument("--n-a", type=int, default=100, help="mix A size (20%% harmful)")
    parser.add_argument("--n-b-harmful", type=int, default=40, help="harmful lines in mix B (plus 40 benign)")
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ratio", choices=["mean_token", "sequence"], default="mean_token")
    parser.add_argument(
        "--refusals",
        type=Path,
        help="y_r set for r, one refusal per line (default: DEFAULT_REFUSALS, the strings alignment trained on)",
    )
    parser.add_argument("--save", action="store_true", help="write bench/results/prescreen-cpu.json")
    parser.add_argument("--out", type=Path)
    args = parser.parse_args()
    torch.manual_seed(args.seed)
    refusals = (read_refusals(args.refusals) if args.refusals else []) or None
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="prescreen-") as tmp:
        work = Path(tmp)
        data = mixes(args.seed, args.n_a, args.n_b_harmful)
        files = {}
        for name, mix in data.items():
            assets.write_jsonl(work / f"{name}.jsonl", [record for record, _, _ in mix])
            harmful = {i + 1 for i, (_, is_harmful, _) in enumerate(mix) if is_harmful}
            files[name] = (work / f"{name}.jsonl", harmful, {i + 1: source for i, (_, _, source) in enumerate(mix)})
        models: dict[str, Path] = {}
        align_s = None
        if args.base:
            models["given:" + args.base.name] = args.base
        else:
            models["raw SmolLM2-135M-Instruct"] = assets.smollm2_dir()
            if args.align_steps > 0:
                t0 = time.perf_counter()
                label = f"SmolLM2 + {args.align_steps}-step {args.align_mode} alignment (merged)"
                models[label] = align_here(
                    work, args.align_steps, args.align_batch, args.align_mode, args.align_benign_fraction, args.seed
                )
                align_s = round(time.perf_counter() - t0, 1)
        results = []
        for label, model_dir in models.items():
            for name, (path, harmful, sources) in files.items():
                t0 = time.perf_counter()
                res = screen_file(
                    model_dir,
                    path,
                    batch_size=args.batch_size,
                    max_seq_len=args.max_seq_len,
                    ratio=args.ratio,
                    refusals=refusals,
                )
                row = {"model": label, "mix": name, **evaluate(res, harmful, sources)}
                row["screen_s"] = round(time.perf_counter() - t0, 1)
                results.append(row)
                print(json.dumps(row), file=sys.stderr)
    out = {
        "bench": "prescreen_smollm2",
        "device": "cpu",
        "threads": torch.get_num_threads(),
        "platform": platform.platform(),
        "ratio": args.ratio,
        "refusals": str(args.refusals) if args.refusals else "DEFAULT_REFUSALS (also alignment's refusal targets)",
        "top_fraction": 0.2,
        "max_seq_len": args.max_seq_len,
        "data": {
            "harmful": "PyRIT scorer_evals harmful pairs, builtin_splits().attack (disjoint from alignment data)",
            "A_benign": "reasoning-gym gsm_symbolic (worked solutions) + basic_arithmetic (bare answers), half each",
            "B_benign": "40 hand-written everyday instructions with prose answers (bench/data/everyday_prose.jsonl)",
            "C_benign": "20% harmful prompts answered with held-out refusals + 60% of mix A's reasoning-gym lines",
        },
        "alignment": None
        if args.base or args.align_steps <= 0
        else {
            "mode": args.align_mode,
            "steps": args.align_steps,
            "batch": args.align_batch,
            "benign_fraction": args.align_benign_fraction,
            "recipe": "lr 5e-4, LoRA r=16 alpha=32 on q/k/v, max_seq_len 128 (AlignmentSpec's demo defaults)",
            "seconds": align_s,
        },
        "goal": "A: precision of the suspected lines >= 0.8; B: auroc_by_r > auroc_by_loglik",
        "refusal_onset": "log sum of pi(t|x) over the refusal set's first tokens: prompt-level, not part of r",
        "onset_ratio": "log pi(y|x)/N - refusal_onset: the pre-screen's default ranking of suspected lines",
        "results": results,
        "total_s": round(time.perf_counter() - started, 1),
    }
    emit(out, args.out, "prescreen-cpu.json" if args.save else None)


if __name__ == "__main__":
    main()
