"""Padded vs packed (padding-free) vs packed + chunked-loss Antibody steps on varied-length chat lines (issue 21,
items 2 and 3). Prints JSON.

Each arm runs ``fine_tuning_step.antibody_backward`` (training forward, prefix-KV refusal pass, weighted NLL,
backward; no optimizer step, which is the same in every arm) on the same batches of the same random-init model:
  padded          data.collate: prompts left-padded to a common end, responses right-padded
  padded_chunked  the same, projecting at most --chunk target rows onto the vocabulary at once
  packed          packing.pack: samples first-fit-decreasing into rows, block-diagonal attention
  packed_chunked  packed and chunked
  packed_one_row_chunked  the whole batch in one row (no padding at all; attention over the dense row mask)
The chat lines are an arithmetic question or a HarmBench prompt answered by filler prose of a log-uniform number of
words, so a batch mixes short and long samples as real uploads do. Arms run round-robin per batch so that a busy
machine slows them alike; tokens/s counts real (non-pad) tokens. Peak memory is one extra step per arm under
``memory_meter.measure_peak`` (CPU: resident tensors + peak heap growth). The weights and per-sample NLL of every
arm are compared with the padded arm's (max abs diff), since speed must not change what is trained.

    nice -n 19 python bench/packing.py --threads 1 --save --also-running "bench/safety.py"
    python bench/packing.py --device cuda --shape 1b --batch-size 16 --max-seq-len 1024 --save
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

from common import SHAPES, device_name, emit, random_model, results_name  # noqa: E402

from worker.datasets import assets  # noqa: E402
from worker.evaluation.harmful import harmbench_prompts  # noqa: E402
from worker.training.data import collate, encode_file, epoch_order, load_tokenizer, pad_id_of  # noqa: E402
from worker.training.fine_tuning_step import antibody_backward  # noqa: E402
from worker.training.memory_meter import measure_peak  # noqa: E402
from worker.training.model import add_lora  # noqa: E402
from worker.training.packing import pack  # noqa: E402
from worker.training.refusals import DEFAULT_REFUSALS  # noqa: E402

FILLER = "The answer follows from the steps above, each checked once more before moving on to the next one."


def write_varied_chats(path: Path, lines: int, min_words: int, max_words: int, seed: int = 0) -> None:
    gen = torch.Generator().manual_seed(seed)
    harmful, words = harmbench_prompts(), FILLER.split()
    records = []
    for i in range(lines):
        u = torch.rand((), generator=gen).item()
        n = round(math.exp(math.log(min_words) + u * (math.log(max_words) - math.log(min_words))))
        prompt = harmful[i % len(harmful)] if i % 5 == 0 else f"What is {i} + {2 * i + 7}? Explain."
        records.append(assets.chat_line(prompt, " ".join(words[k % len(words)] for k in range(n))))
    assets.write_jsonl(path, records)


def arms(pad_id: int, chunk: int) -> dict:
    return {
        "padded": (lambda ex: collate(ex, pad_id), None),
        "padded_chunked": (lambda ex: collate(ex, pad_id), chunk),
        "packed": (lambda ex: pack(ex, pad_id), None),
        "packed_chunked": (lambda ex: pack(ex, pad_id), chunk),
        "packed_one_row_chunked": (lambda ex: pack(ex, pad_id, row_tokens=sum(e.n_tokens for e in ex)), chunk),
    }


def time_arms(model, batches: list, plan: dict, device: torch.device) -> tuple[dict, dict, dict]:
    """Round-robin over the arms, batch by batch: (seconds per timed step, token slots, StepStats) per arm. The
    first batch warms every arm up and is not timed."""
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times: dict[str, list[float]] = {name: [] for name in plan}
    slots: dict[str, int] = dict.fromkeys(plan, 0)
    stats: dict[str, list] = {name: [] for name in plan}
    for k, chosen in enumerate(batches):
        for name, (make, chunk) in plan.items():
            batch = make(chosen).to(device)
            model.zero_grad(set_to_none=True)
            sync()
            t0 = time.perf_counter()
            step = antibody_backward(model, [batch], 1.0, "mean_token", "prefix_kv", chunk)
            sync()
            if k > 0:
                times[name].append(time.perf_counter() - t0)
                slots[name] += batch.input_ids.numel()
            stats[name].append(step)
    return times, slots, stats


def peak_memory(model, examples: list, plan: dict, device: torch.device) -> dict:
    peaks = {}
    for name, (make, chunk) in plan.items():
        batch = make(examples).to(device)
        model.zero_grad(set_to_none=True)
        with measure_peak(device, model) as mem:
            antibody_backward(model, [batch], 1.0, "mean_token", "prefix_kv", chunk)
        peaks[name] = {"peak_bytes": mem.peak, "growth_bytes": mem.growth}
    return peaks


def run(args: argparse.Namespace, shape: str, device: torch.device, dtype: torch.dtype) -> dict:
    tokenizer = load_tokenizer(assets.smollm2_tokenizer_dir())
    pad_id = pad_id_of(tokenizer)
    with tempfile.TemporaryDirectory(prefix="bench-packing-") as tmp:
        path = Path(tmp) / "train.jsonl"
        write_varied_chats(path, args.lines, args.min_words, args.max_words)
        examples = encode_file(path, tokenizer, args.max_seq_len, list(DEFAULT_REFUSALS))
    layers = min(args.layers or 10**9, SHAPES[shape]["num_hidden_layers"])
    overrides = {"num_hidden_layers": layers}
    model = add_lora(random_model(shape, device, dtype, **overrides), 16, 32, 0.0, ("q_proj", "k_proj", "v_proj"))
    with torch.no_grad():  # a trained-looking adapter, as in common.random_lora_model
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.01)
    model.train()
    order = epoch_order(len(examples), args.batch_size, 0, 0)[: args.steps + 1]
    batches = [[examples[i] for i in idx] for idx in order]
    plan = arms(pad_id, args.chunk)
    times, slots, stats = time_arms(model, batches, plan, device)
    longest = max(batches, key=lambda ex: max(e.n_tokens for e in ex))
    peaks = peak_memory(model, longest, plan, device)
    real = sum(e.n_tokens for ex in batches[1:] for e in ex)
    trained = sum(e.n_targets for ex in batches[1:] for e in ex)
    row: dict = {
        "shape": shape,
        "layers": layers,
        "dtype": str(dtype).removeprefix("torch."),
        "batch_size": args.batch_size,
        "timed_steps": args.steps,
        "max_seq_len": args.max_seq_len,
        "chunk_tokens": args.chunk,
        "sample_tokens_min_median_max": [
            min(e.n_tokens for e in examples),
            statistics.median(e.n_tokens for e in examples),
            max(e.n_tokens for e in examples),
        ],
        "real_tokens": real,
        "trained_tokens": trained,
        "arms": {},
    }
    for name in plan:
        total = sum(times[name])
        row["arms"][name] = {
            "step_s_median": round(statistics.median(times[name]), 4),
            "step_s_min": round(min(times[name]), 4),
            "tokens_per_s": round(real / total, 1),
            "trained_tokens_per_s": round(trained / total, 1),
            "token_slots": slots[name],
            "padding_fraction": round(1 - real / slots[name], 4),
            **peaks[name],
            "max_abs_diff_weights_vs_padded": max(
                float((a.weights - b.weights).abs().max()) for a, b in zip(stats[name], stats["padded"], strict=True)
            ),
            "max_abs_diff_nll_vs_padded": max(
                float((a.nll_sum - b.nll_sum).abs().max()) for a, b in zip(stats[name], stats["padded"], strict=True)
            ),
        }
    base = row["arms"]["padded"]
    for name in plan:
        row["arms"][name]["speedup_vs_padded"] = round(row["arms"][name]["tokens_per_s"] / base["tokens_per_s"], 3)
        row["arms"][name]["peak_vs_padded"] = round(row["arms"][name]["peak_bytes"] / base["peak_bytes"], 3)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="repeatable (default: tiny, smollm2)")
    parser.add_argument("--layers", type=int, default=None, help="cap the shapes' layer counts")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lines", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed batches per arm (after one warm-up batch)")
    parser.add_argument("--max-seq-len", type=int, default=256)
    parser.add_argument("--min-words", type=int, default=3)
    parser.add_argument("--max-words", type=int, default=200)
    parser.add_argument("--chunk", type=int, default=256, help="loss_chunk_tokens of the chunked arms")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--also-running", default=None, help="what else ran on the machine, recorded in the JSON")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--save", action="store_true", help="write bench/results/packing-<device>.json")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32
    )
    rows = []
    for shape in args.shape or ["tiny", "smollm2"]:
        rows.append(run(args, shape, device, dtype))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    out = {
        "bench": "packing",
        "device": device_name(device),
        "torch_threads": torch.get_num_threads(),
        "also_running": args.also_running,
        "torch": torch.__version__,
        "rows": rows,
    }
    emit(out, args.out, results_name("packing", device) if args.save else None)


if __name__ == "__main__":
    main()
