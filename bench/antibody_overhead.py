"""What Antibody's weighting costs over plain LoRA SFT, per training step (issue 3, item 4). Prints JSON.

Three step variants on the same random-init model and the same batch (forward + backward, no optimizer):
  sft       token-mean NLL through the library's training forward (only target rows hit the vocabulary)
  naive     Antibody with a second no-grad forward over x‖y_r through the stock HF head (the reference layout)
  antibody  Antibody with log π(y_r|x) from the training forward's prefix KV cache (what training uses)
plus ``sft_hf``: the stock ``model(labels=...)`` loss (full [B, T, V] logits), for context.

    python bench/antibody_overhead.py --save                            # CPU: tiny and smollm2 shapes
    python bench/antibody_overhead.py --device cuda --shape 1b --config 8x512 --config 16x1024 --save
    python bench/antibody_overhead.py --device cuda --shape 7b --config 16x1024 --out bench/results/x.json
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

from worker.training.fine_tuning_step import antibody_backward  # noqa: E402
from worker.training.passes import refusal_logprobs_naive, refusal_logprobs_prefix_kv, response_pass  # noqa: E402

CPU_DEFAULT = [("tiny", 8, 128), ("tiny", 4, 512), ("smollm2", 4, 128)]


def sft_step(model, batch) -> None:
    out = response_pass(model, batch, keep_cache=False)
    (out.nll_sum.sum() / out.n_tokens.sum()).backward()


def sft_hf_step(model, batch) -> None:
    labels = batch.input_ids.masked_fill(batch.target_mask == 0, -100)
    model(
        input_ids=batch.input_ids,
        attention_mask=batch.attention_mask,
        position_ids=batch.position_ids,
        labels=labels,
        use_cache=False,
    ).loss.backward()


def timed(variants: dict, model, batch, device: torch.device, warmup: int, steps: int) -> dict:
    """Seconds per step (min and median) and peak GiB (CUDA only) of each variant.

    Variants run round-robin, one step each in turn, so that a slow period of a shared machine hits all of them
    alike; the minimum is the least disturbed estimate there.
    """
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for _ in range(warmup):
        for fn in variants.values():
            fn(model, batch)
            model.zero_grad(set_to_none=True)
    times: dict[str, list[float]] = {name: [] for name in variants}
    peaks: dict[str, float] = {}
    for _ in range(steps):
        for name, fn in variants.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync()
            t0 = time.perf_counter()
            fn(model, batch)
            sync()
            times[name].append(time.perf_counter() - t0)
            model.zero_grad(set_to_none=True)
            if device.type == "cuda":
                peaks[name] = max(peaks.get(name, 0.0), torch.cuda.max_memory_allocated() / 2**30)
    return {
        name: {"min": min(t), "median": statistics.median(t), "peak_gib": peaks.get(name)} for name, t in times.items()
    }


def run(shape: str, batch_size: int, seq_len: int, device: torch.device, dtype: torch.dtype, args) -> dict:
    targets = ("q_proj", "k_proj", "v_proj", "o_proj")
    model = random_lora_model(shape, device, dtype, args.lora_rank, 2 * args.lora_rank, targets)
    batch = make_batch(batch_size, seq_len, SHAPES[shape]["vocab_size"], args.refusal_len).to(device)
    variants = {
        "sft": sft_step,
        "naive": lambda m, b: antibody_backward(m, [b], 1.0, "mean_token", "naive"),
        "antibody": lambda m, b: antibody_backward(m, [b], 1.0, "mean_token", "prefix_kv"),
        "sft_hf": sft_hf_step,
    }
    row: dict = {
        **config_row(device, shape, dtype, batch_size, seq_len),
        "refusal_len": args.refusal_len,
        "lora_rank": args.lora_rank,
        "steps": args.steps,
        "timing": "min over steps (median in *_median_s)",
    }
    for name, t in timed(variants, model, batch, device, args.warmup, args.steps).items():
        row[f"{name}_s"] = round(t["min"], 5)
        row[f"{name}_median_s"] = round(t["median"], 5)
        if t["peak_gib"] is not None:
            row[f"{name}_peak_gib"] = round(t["peak_gib"], 3)
    row["antibody_over_sft"] = round(row["antibody_s"] / row["sft_s"], 4)
    row["naive_over_sft"] = round(row["naive_s"] / row["sft_s"], 4)
    row["sft_hf_over_sft"] = round(row["sft_hf_s"] / row["sft_s"], 4)
    with torch.no_grad():
        out = response_pass(model, batch, keep_cache=True)
        ours = refusal_logprobs_prefix_kv(model, batch, out.cache, out.prompt_end_hidden)
        naive = refusal_logprobs_naive(model, batch)
    row["logp_ref_max_abs_diff"] = float((ours - naive).abs().max())
    row["logp_ref_max_abs_diff_per_token"] = row["logp_ref_max_abs_diff"] / args.refusal_len
    del model
    if device.type == "cuda":
        torch.cuda.empty_cache()
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_step_args(parser, default_config_help="8x512 and 16x1024", lora_rank=16)
    parser.add_argument("--refusal-len", type=int, default=16)
    run_plan(
        "antibody_overhead", parser.parse_args(), run, default_configs=[(8, 512), (16, 1024)], cpu_default=CPU_DEFAULT
    )


if __name__ == "__main__":
    main()
