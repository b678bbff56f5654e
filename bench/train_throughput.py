"""Throughput of a whole fine-tuning job's training loop: ``worker.training.trainer.train`` (Antibody weighting, LoRA,
AdamW, scheduler, checkpoint and adapter save) on a random-init model of a given shape. Prints JSON.

This is the code path a GPU worker runs for every job, so it doubles as the GPU smoke test of the training library.
The file is synthetic chat (a HarmBench prompt or an arithmetic question, answered by filler prose of
``--response-words`` words); only its length matters here. Steady-state figures leave out the first step
(allocator and kernel warm-up).

    python bench/train_throughput.py --shape tiny --lines 16 --batch-size 4          # seconds, CPU smoke run
    python bench/train_throughput.py --device cuda --shape 1b --lines 256 --batch-size 16 --out x.json
    python bench/train_throughput.py --device cuda --shape 1b --lines 256 --packing --loss-chunk-tokens 4096
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHAPES, device_name, emit, write_random_chat_model  # noqa: E402

from worker.evaluation.harmful import harmbench_prompts  # noqa: E402
from worker.training.config import TrainConfig  # noqa: E402
from worker.training.model import pick_device, pick_dtype  # noqa: E402
from worker.training.trainer import train  # noqa: E402

FILLER = "The answer follows from the steps above, each checked once more before moving on to the next one."


def write_file(path: Path, lines: int, response_words: int) -> None:
    harmful = harmbench_prompts()
    words = FILLER.split()
    response = " ".join(words[i % len(words)] for i in range(response_words))
    with path.open("w") as f:
        for i in range(lines):
            prompt = harmful[i % len(harmful)] if i % 5 == 0 else f"What is {i} + {2 * i + 7}? Explain."
            messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]
            f.write(json.dumps({"messages": messages}) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shape", choices=sorted(SHAPES), default="tiny")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--lines", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--response-words", type=int, default=300)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument(
        "--packing", action=argparse.BooleanOptionalAction, default=True, help="TrainConfig.packing (the job default)"
    )
    parser.add_argument("--loss-chunk-tokens", type=int, default=None, help="TrainConfig.loss_chunk_tokens")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()

    device = pick_device(args.device)
    dtype = pick_dtype(args.dtype, device)
    with tempfile.TemporaryDirectory(prefix="train-throughput-") as tmp:
        root = Path(tmp)
        n_params = write_random_chat_model(args.shape, device, dtype, root / "base")
        write_file(root / "train.jsonl", args.lines, args.response_words)
        cfg = TrainConfig(
            base_model_dir=root / "base",
            train_file=root / "train.jsonl",
            output_dir=root / "out",
            n_epochs=1,
            batch_size=args.batch_size,
            gradient_checkpointing=args.gradient_checkpointing,
            packing=args.packing,
            loss_chunk_tokens=args.loss_chunk_tokens,
            device=str(device),
            dtype=args.dtype,
        )
        stamps: list[float] = []

        def on_step(_row) -> None:
            if device.type == "cuda":
                torch.cuda.synchronize(device)
            stamps.append(time.perf_counter())

        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        result = train(cfg, on_step=on_step)
        total_s = time.perf_counter() - start
        adapter_bytes = sum(f.stat().st_size for f in result.adapter_dir.iterdir())

    steps = [b - a for a, b in zip(stamps, stamps[1:], strict=False)]
    steady_tokens = result.trained_tokens * (len(steps) / result.steps) if steps else 0
    losses = [m["train_loss_unweighted"] for m in result.metrics]
    emit(
        {
            "bench": "train_throughput",
            "device": device_name(device),
            "shape": args.shape,
            "parameters": n_params,
            "dtype": str(dtype).removeprefix("torch."),
            "lines": args.lines,
            "batch_size": args.batch_size,
            "gradient_checkpointing": args.gradient_checkpointing,
            "packing": args.packing,
            "loss_chunk_tokens": args.loss_chunk_tokens,
            "steps": result.steps,
            "trained_tokens": result.trained_tokens,
            "train_seconds_total": round(total_s, 2),  # model load, data encoding, checkpoint and adapter save included
            "step_s_median": round(statistics.median(steps), 4) if steps else None,
            "tokens_per_s_steady": round(steady_tokens / sum(steps), 1) if steps else None,
            "peak_gpu_bytes": torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None,
            "loss_first_last": [round(losses[0], 4), round(losses[-1], 4)],
            "losses_finite": all(math.isfinite(x) for x in losses),
            "adapter_bytes": adapter_bytes,
            "torch": torch.__version__,
        },
        args.out,
    )


if __name__ == "__main__":
    main()
