"""Batched greedy decoding (``worker.evaluation.generation.generate``) under each attention implementation and SDPA
backend, run twice each: the first run meets every key length for the first time, the second reuses whatever the
backend cached per shape. Also a torch profile of one batched run. Prints JSON.

This is how the cuDNN-attention slowdown behind ``generation.decoding_attention`` was found (cuDNN builds a graph per
new key length; decoding meets one per step). Run it on a fresh process: a backend's cache outlives its run. The
"shipped" row is generate() as the worker runs it; the others switch its own choice off.
Random-init model with SmolLM2's tokenizer; ``--device cpu --shape tiny`` is a smoke run.

    python bench/decode_attention.py --device cuda --shape smollm2 --prompts 64 --out x.json
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import nullcontext
from pathlib import Path

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHAPES, device_name, emit, random_chat_model  # noqa: E402

from worker.evaluation import generation  # noqa: E402
from worker.evaluation.harmful import default_prompt_set  # noqa: E402
from worker.training.model import pick_dtype  # noqa: E402

BACKENDS = [SDPBackend.MATH, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.CUDNN_ATTENTION]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--shape", choices=sorted(SHAPES), default="smollm2")
    parser.add_argument("--prompts", type=int, default=64, help="first N HarmBench prompts, all in one batch")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device = torch.device(args.device)
    dtype = pick_dtype("auto", device)
    prompts = list(default_prompt_set(limit=args.prompts).prompts)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)

    def timed(model, backend: SDPBackend | None, shipped: bool) -> float:
        """Seconds for one batched generate(); unless ``shipped``, generate()'s own backend choice is switched off
        so that ``backend`` (None: torch's default, every backend enabled) is what runs."""
        own = generation.decoding_attention
        if not shipped:
            generation.decoding_attention = lambda _device: nullcontext()
        try:
            sync()
            start = time.perf_counter()
            with sdpa_kernel([backend]) if backend else nullcontext():
                generation.generate(model, tokenizer, prompts, args.max_new_tokens, batch_size=len(prompts))
            sync()
            return round(time.perf_counter() - start, 3)
        finally:
            generation.decoding_attention = own

    runs, profile = [], None
    for impl in ("sdpa", "eager"):
        model, tokenizer = random_chat_model(args.shape, device, dtype, attn_implementation=impl)
        model.eval()
        plan = [("shipped", None, True), ("torch default", None, False)] + [(b.name, b, False) for b in BACKENDS]
        for name, backend, shipped in plan if impl == "sdpa" else [("-", None, False)]:
            row: dict = {"attention": impl, "sdpa": name}
            try:
                row["first_run_s"] = timed(model, backend, shipped)
                row["second_run_s"] = timed(model, backend, shipped)
            except RuntimeError as exc:  # a backend that cannot run this shape/device
                row["error"] = str(exc)[:300]
            runs.append(row)
            print(row, file=sys.stderr, flush=True)
        if impl == "sdpa":
            from torch.profiler import ProfilerActivity
            from torch.profiler import profile as torch_profile

            activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
            with torch_profile(activities=activities) as prof:
                generation.generate(model, tokenizer, prompts, 16, batch_size=len(prompts))
            sync()
            profile = prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25)
        del model

    emit(
        {
            "bench": "decode_attention",
            "device": device_name(device),
            "shape": args.shape,
            "prompts": args.prompts,
            "max_new_tokens": args.max_new_tokens,
            "torch": torch.__version__,
            "runs": runs,
            "profile_self_cpu_16_tokens": profile,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
