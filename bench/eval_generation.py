"""HS-evaluation throughput: batched greedy generation vs one prompt at a time, on the same prompts (issue 6,
item 5). Prints JSON. Goal: ≥ 5× on CPU, ≥ 10× on GPU.

Both arms run ``worker.evaluation.harmful.evaluate_harmful`` end to end (chat template, generation, keyword
judge); only ``batch_size`` differs. On a CPU shared with other jobs, ``--threads 1`` avoids oversubscribing
the cores, which slows small one-prompt steps far more than batched ones. ``agreement`` is the share of prompts
whose generated tokens are identical in both arms (1.0 expected in fp32; bf16 on GPU may differ on near-ties).

    python bench/eval_generation.py --threads 1 --save               # CPU, SmolLM2-135M (the committed run)
    python bench/eval_generation.py --model tiny --prompts 16        # seconds, for a smoke run
    python bench/eval_generation.py --device cuda --prompts 200 --batch-size 64 --save
    python bench/eval_generation.py --device cuda --shape 1b --prompts 64 --batch-size 64    # no weights needed

``--shape`` replaces the model by a random-init Llama of that shape (bench/common.py) with SmolLM2's tokenizer and
49k vocabulary: for GPUs that cannot hold the real weights. Random weights rarely emit the stop token, so every
prompt runs to ``--max-new-tokens`` in both arms (the batched arm wastes nothing on early-finished rows, unlike
with a trained model), and greedy bf16 picks among near-equal logits, so ``agreement`` is low there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHAPES, random_chat_model  # noqa: E402

from worker.datasets import assets  # noqa: E402
from worker.evaluation.harmful import HSResult, default_prompt_set, evaluate_harmful  # noqa: E402
from worker.evaluation.judges import KeywordRefusalJudge  # noqa: E402
from worker.training.data import load_tokenizer  # noqa: E402
from worker.training.model import load_base_model, pick_device, pick_dtype  # noqa: E402


def model_dir(name: str) -> Path:
    if name == "smollm2":
        return assets.smollm2_dir()
    if name == "tiny":
        return assets.tiny_model_dir(Path(tempfile.mkdtemp(prefix="tiny-")))
    return Path(name)  # a local HF model folder


def timed_eval(model, tokenizer, prompt_set, judge, max_new_tokens: int, batch_size: int, device) -> tuple:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    result = evaluate_harmful(model, tokenizer, prompt_set, judge, max_new_tokens, batch_size)
    if device.type == "cuda":
        torch.cuda.synchronize()
    return result, time.perf_counter() - start


def arm(result: HSResult, seconds: float, batch_size: int) -> dict:
    new_tokens = sum(r.new_tokens for r in result.records)
    return {
        "batch_size": batch_size,
        "seconds": round(seconds, 3),
        "prompts_per_s": round(result.n / seconds, 3),
        "new_tokens": new_tokens,
        "new_tokens_per_s": round(new_tokens / seconds, 1),
        "hs": result.score,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="smollm2", help="smollm2 | tiny | a local HF model folder")
    parser.add_argument("--shape", choices=sorted(SHAPES), help="random-init model of this shape instead of --model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--prompts", type=int, default=32, help="first N HarmBench prompts")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--save", action="store_true", help="write bench/results/eval_generation-<device>.json")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    if args.threads:
        torch.set_num_threads(args.threads)
    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    if args.shape:
        model, tokenizer = random_chat_model(args.shape, device, dtype)
        model.eval()
        model_name = f"random-init {args.shape} shape, SmolLM2 tokenizer"
    else:
        path = model_dir(args.model)
        tokenizer = load_tokenizer(path)
        model = load_base_model(path, device, dtype).eval()
        model_name = args.model if args.model in ("smollm2", "tiny") else str(path)
    prompt_set = default_prompt_set(limit=args.prompts)
    judge = KeywordRefusalJudge()

    load_before = round(os.getloadavg()[0], 2)
    # Warm-up (allocator, kernels) on two prompts so neither arm pays it.
    evaluate_harmful(model, tokenizer, default_prompt_set(limit=2), judge, 4, 2)
    one, one_s = timed_eval(model, tokenizer, prompt_set, judge, args.max_new_tokens, 1, device)
    many, many_s = timed_eval(model, tokenizer, prompt_set, judge, args.max_new_tokens, args.batch_size, device)
    agree = (
        sum(
            a.response == b.response and a.new_tokens == b.new_tokens
            for a, b in zip(one.records, many.records, strict=True)
        )
        / one.n
    )

    report = {
        "bench": "eval_generation",
        "model": model_name,
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device)
        if device.type == "cuda"
        else platform.processor() or platform.machine(),
        "dtype": str(dtype).removeprefix("torch."),
        "protocol": {k: one.protocol[k] for k in ("prompt_set", "size", "max_new_tokens", "judge")},
        "one_at_a_time": arm(one, one_s, 1),
        "batched": arm(many, many_s, args.batch_size),
        "speedup": round(one_s / many_s, 2),
        "agreement": agree,
        "goal": "≥ 5× on CPU, ≥ 10× on GPU",
        "machine": {
            "cpus": os.cpu_count(),
            "torch_threads": torch.get_num_threads(),
            # Other processes share this machine's cores; both arms ran back to back under the same load.
            "load_average_1m_before": load_before,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
    }
    text = json.dumps(report, indent=2, ensure_ascii=False)
    print(text)
    out = args.out or (Path(__file__).parent / "results" / f"eval_generation-{device.type}.json" if args.save else None)
    if out:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n")


if __name__ == "__main__":
    main()
