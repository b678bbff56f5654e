"""Cost of one Antibody alignment step against one plain (refusal-)SFT step (issue 5, item 3). Prints JSON.

Both steps run on the same random-init model with the same LoRA (r=32, alpha=4, q/k/v, as the authors), and every
batch has the same shape, so the alignment step's four passes each process as many tokens as the SFT step's one.
A step is forward(s) + backward(s) + gradient clipping + AdamW. Reported per configuration:
  passes      forward and backward passes through the decoder, counted by hooks
  *_s         median seconds per step
  *_peak      peak tensor bytes of a step (CUDA: max_memory_allocated; CPU: see worker/training/memory_meter.py)
  time_ratio, memory_ratio   alignment / SFT  (goals: ≤ 4.0 and ≤ 1.05)

    python bench/alignment_step.py --save                               # CPU: tiny and smollm2 shapes
    python bench/alignment_step.py --device cuda --shape 1b --save      # random-init 1B, 16×256
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import SHAPES, add_step_args, config_row, make_batch, random_lora_model, run_plan  # noqa: E402

from worker.training.alignment_step import FlatnessParams, antibody_alignment_step, count_passes, sft_step  # noqa: E402
from worker.training.memory_meter import measure_peak  # noqa: E402

CPU_DEFAULT = [("tiny", 8, 128), ("smollm2", 4, 128)]


def build(shape: str, device: torch.device, dtype: torch.dtype, rank: int, alpha: float):
    model = random_lora_model(shape, device, dtype, rank, alpha, ("q_proj", "k_proj", "v_proj"))
    params = [p for p in model.parameters() if p.requires_grad]
    return model, params, torch.optim.AdamW(params, lr=1e-6, weight_decay=0.1)


def run(shape: str, batch: int, seq_len: int, device: torch.device, dtype: torch.dtype, args) -> dict:
    model, params, optimizer = build(shape, device, dtype, args.lora_rank, args.lora_alpha)
    vocab = SHAPES[shape]["vocab_size"]
    align, harm, refusal = (make_batch(batch, seq_len, vocab, 16, seed=s).to(device) for s in (1, 2, 3))
    hp = FlatnessParams()
    state = {"lambda": (0.0, 0)}

    def sft() -> None:
        optimizer.zero_grad(set_to_none=True)
        sft_step(model, align)
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    def antibody() -> None:
        optimizer.zero_grad(set_to_none=True)
        _, state["lambda"] = antibody_alignment_step(model, params, align, harm, refusal, hp, state["lambda"])
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    sync = (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else (lambda: None)
    row: dict = {
        **config_row(device, shape, dtype, batch, seq_len),
        "lora_rank": args.lora_rank,
        "lora_targets": "q,k,v",
        "steps": args.steps,
    }
    kinds = {"sft": sft, "alignment": antibody}
    for name, fn in kinds.items():
        for _ in range(args.warmup):  # also creates AdamW's state, so both kinds start with it resident
            fn()
        with count_passes(model) as passes:
            fn()
        row[f"{name}_passes"] = {"forward": passes.forward, "backward": passes.backward}
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for _ in range(args.steps):  # interleaved, so that load from other processes hits both kinds alike
        for name, fn in kinds.items():
            sync()
            t0 = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t0)
    for name, fn in kinds.items():
        row[f"{name}_s"] = round(statistics.median(times[name]), 5)
        optimizer.zero_grad(set_to_none=True)
        with measure_peak(device, model, optimizer) as mem:
            fn()
        row[f"{name}_peak_bytes"] = mem.peak
        row[f"{name}_resident_bytes"] = mem.resident
        row[f"{name}_growth_bytes"] = mem.growth
    row["time_ratio"] = round(row["alignment_s"] / row["sft_s"], 4)
    row["memory_ratio"] = round(row["alignment_peak_bytes"] / row["sft_peak_bytes"], 4)
    row["memory_method"] = "cuda max_memory_allocated" if device.type == "cuda" else "resident tensors + mallinfo2 peak"
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_step_args(parser, default_config_help="16x256", lora_rank=32)
    parser.add_argument("--lora-alpha", type=float, default=4.0)
    run_plan("alignment_step", parser.parse_args(), run, default_configs=[(16, 256)], cpu_default=CPU_DEFAULT)


if __name__ == "__main__":
    main()
