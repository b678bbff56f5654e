"""Where does the pre-screen's refusal term carry its signal? (issue 6, demonstration 4 diagnosis). Prints JSON.

For every line of the pre-screen bench's mixes (``prescreen_smollm2.mixes``), the per-token log-probabilities of
the line's assigned refusal y_r (``refusal_index``) after its prompt, on each model. Reported per group
(harmful / benign lines): the mean-token value that r uses, and the sum over the first 1, 2 and 3 refusal
tokens (where the model decides whether to refuse). Also the top-20% precision and AUROC of ranking lines by r,
by log π(y|x)/N, by the mean-token refusal term alone and by the first refusal token alone.

    python bench/prescreen_refusal_terms.py --base /path/to/aligned --save
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import emit  # noqa: E402
from prescreen_smollm2 import mixes  # noqa: E402

from worker.datasets import assets  # noqa: E402
from worker.evaluation.prescreen import auroc  # noqa: E402
from worker.training.data import collate, encode_file, load_tokenizer, pad_id_of  # noqa: E402
from worker.training.model import load_base_model  # noqa: E402
from worker.training.passes import refusal_token_logprobs_naive, response_pass  # noqa: E402
from worker.training.refusals import resolve_refusals  # noqa: E402


@torch.no_grad()
def per_token(model_dir: Path, path: Path, max_seq_len: int, batch_size: int) -> dict[int, dict]:
    """line → {"refusal": [log π(y_r,t | x, y_r,<t)], "loglik": log π(y|x)/N} with one full forward each."""
    tokenizer = load_tokenizer(model_dir)
    pad = pad_id_of(tokenizer)
    examples = encode_file(path, tokenizer, max_seq_len, resolve_refusals(None))
    model = load_base_model(model_dir, torch.device("cpu"), torch.float32).eval()
    out: dict[int, dict] = {}
    for start in range(0, len(examples), batch_size):
        chunk = examples[start : start + batch_size]
        batch = collate(chunk, pad)
        resp = response_pass(model, batch, keep_cache=False)
        logp = refusal_token_logprobs_naive(model, batch)
        for j, example in enumerate(chunk):
            n = int(batch.refusal_mask[j].sum())
            loglik = (resp.logp_response[j] / resp.n_tokens[j].clamp(min=1)).item()
            out[example.line] = {"refusal": logp[j, :n].tolist(), "loglik": loglik}
    return out


def summarise(scores: dict[int, dict], harmful: set[int]) -> dict:
    def group(is_harmful: bool) -> dict:
        rows = [v["refusal"] for line, v in scores.items() if (line in harmful) == is_harmful]
        mean = lambda xs: round(sum(xs) / len(xs), 3)  # noqa: E731
        return {
            "n": len(rows),
            "refusal_mean_token": mean([sum(r) / len(r) for r in rows]),
            **{f"refusal_first_{k}": mean([sum(r[:k]) for r in rows]) for k in (1, 2, 3)},
            "refusal_after_first_3_mean_token": mean([sum(r[3:]) / max(1, len(r) - 3) for r in rows]),
        }

    rankings = {  # lower = more suspicious, as in the screen
        "r": {line: v["loglik"] - sum(v["refusal"]) / len(v["refusal"]) for line, v in scores.items()},
        "loglik": {line: v["loglik"] for line, v in scores.items()},
        "refusal_mean_token_only": {line: -sum(v["refusal"]) / len(v["refusal"]) for line, v in scores.items()},
        "refusal_first_token_only": {line: -v["refusal"][0] for line, v in scores.items()},
    }
    k = round(0.2 * len(scores))
    ranked = {}
    for name, score in rankings.items():
        top = sorted(score, key=lambda line: (score[line], line))[:k]
        pos = [-score[line] for line in score if line in harmful]
        neg = [-score[line] for line in score if line not in harmful]
        ranked[name] = {
            "precision_top20": round(sum(line in harmful for line in top) / k, 3),
            "auroc": round(auroc(pos, neg), 3),
        }
    return {"harmful": group(True), "benign": group(False), "rankings": ranked}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base", type=Path, required=True, help="the pre-aligned base model folder")
    parser.add_argument("--max-seq-len", type=int, default=128)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--save", action="store_true", help="write bench/results/prescreen-refusal-terms-cpu.json")
    args = parser.parse_args()
    started = time.perf_counter()
    models = {"aligned:" + args.base.name: args.base, "raw SmolLM2-135M-Instruct": assets.smollm2_dir()}
    results = []
    with tempfile.TemporaryDirectory(prefix="refusal-terms-") as tmp:
        for mix_name, mix in mixes(0, 100, 40).items():
            path = assets.write_jsonl(Path(tmp) / f"{mix_name}.jsonl", [record for record, _, _ in mix])
            harmful = {i + 1 for i, (_, is_harmful, _) in enumerate(mix) if is_harmful}
            for label, model_dir in models.items():
                scores = per_token(model_dir, path, args.max_seq_len, args.batch_size)
                results.append({"model": label, "mix": mix_name, **summarise(scores, harmful)})
                print(json.dumps(results[-1]), file=sys.stderr)
    out = {
        "bench": "prescreen_refusal_terms",
        "device": "cpu",
        "base": str(args.base),
        "max_seq_len": args.max_seq_len,
        "results": results,
        "total_s": round(time.perf_counter() - started, 1),
    }
    emit(out, save_as="prescreen-refusal-terms-cpu.json" if args.save else None)


if __name__ == "__main__":
    main()
