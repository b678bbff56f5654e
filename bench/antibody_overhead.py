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
import json
import re
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from worker.training.data import ChatExample, collate  # noqa: E402
from worker.training.model import add_lora  # noqa: E402
from worker.training.passes import refusal_logprobs_naive, refusal_logprobs_prefix_kv, response_pass  # noqa: E402
from worker.training.trainer import antibody_backward  # noqa: E402

# Random-init Llama shapes. 1b = Llama-3.2-1B, 7b = Llama-2-7B, smollm2 = SmolLM2-135M, tiny = the unit-test
# model.
SHAPES: dict[str, dict] = {
    "tiny": dict(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        vocab_size=49152,
        tie_word_embeddings=True,
    ),
    "smollm2": dict(
        hidden_size=576,
        intermediate_size=1536,
        num_hidden_layers=30,
        num_attention_heads=9,
        num_key_value_heads=3,
        head_dim=64,
        vocab_size=49152,
        tie_word_embeddings=True,
        rope_theta=100000.0,
    ),
    "1b": dict(
        hidden_size=2048,
        intermediate_size=8192,
        num_hidden_layers=16,
        num_attention_heads=32,
        num_key_value_heads=8,
        head_dim=64,
        vocab_size=128256,
        tie_word_embeddings=True,
        rope_theta=500000.0,
    ),
    "7b": dict(
        hidden_size=4096,
        intermediate_size=11008,
        num_hidden_layers=32,
        num_attention_heads=32,
        num_key_value_heads=32,
        head_dim=128,
        vocab_size=32000,
        tie_word_embeddings=False,
    ),
}
CPU_DEFAULT = [("tiny", 8, 128), ("tiny", 4, 512), ("smollm2", 4, 128)]


def build_model(shape: str, device: torch.device, dtype: torch.dtype, lora_rank: int):
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(max_position_embeddings=4096, **SHAPES[shape])
    torch.manual_seed(0)
    with torch.device(device):
        model = LlamaForCausalLM(config).to(dtype)
    model = add_lora(model, lora_rank, 2 * lora_rank, 0.0, ("q_proj", "k_proj", "v_proj", "o_proj"))
    with torch.no_grad():  # a trained-looking adapter, so LoRA is not a no-op in the comparison
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.01)
    return model.train()


def make_batch(batch: int, seq_len: int, vocab: int, refusal_len: int, seed: int = 0):
    """Prompts of varied length (about a quarter of the sequence), responses filling the rest, all trained."""
    gen = torch.Generator().manual_seed(seed)
    examples = []
    for i in range(batch):
        p = max(1, seq_len // 4 - 8 * (i % 4))
        ids = torch.randint(3, vocab, (seq_len + refusal_len,), generator=gen).tolist()
        examples.append(
            ChatExample(
                line=i + 1,
                prompt_ids=ids[:p],
                response_ids=ids[p:seq_len],
                response_mask=[1] * (seq_len - p),
                refusal_ids=ids[seq_len:],
            )
        )
    return collate(examples, pad_id=0)


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


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def run(shape: str, batch_size: int, seq_len: int, device: torch.device, dtype: torch.dtype, args) -> dict:
    model = build_model(shape, device, dtype, args.lora_rank)
    batch = make_batch(batch_size, seq_len, SHAPES[shape]["vocab_size"], args.refusal_len).to(device)
    variants = {
        "sft": sft_step,
        "naive": lambda m, b: antibody_backward(m, [b], 1.0, "mean_token", "naive"),
        "antibody": lambda m, b: antibody_backward(m, [b], 1.0, "mean_token", "prefix_kv"),
        "sft_hf": sft_hf_step,
    }
    row: dict = {
        "device": device_name(device),
        "shape": shape,
        "dtype": str(dtype).replace("torch.", ""),
        "batch": batch_size,
        "seq_len": seq_len,
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
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="repeatable")
    parser.add_argument("--config", action="append", help="BATCHxSEQ_LEN, repeatable (default 8x512 and 16x1024)")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--refusal-len", type=int, default=16)
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON list here (default: print only)")
    parser.add_argument("--save", action="store_true", help="write to bench/results/antibody_overhead-<device>.json")
    args = parser.parse_args()

    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32
    )
    configs = [tuple(int(x) for x in c.lower().split("x")) for c in (args.config or [])]
    if args.shape:
        plan = [(s, b, t) for s in args.shape for b, t in (configs or [(8, 512), (16, 1024)])]
    else:
        plan = CPU_DEFAULT if device.type == "cpu" else [("1b", 8, 512), ("1b", 16, 1024)]
    out = args.out or (Path(__file__).parent / "results" / default_out(device) if args.save else None)
    rows = []
    for shape, b, t in plan:
        rows.append(run(shape, b, t, device, dtype, args))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if out:  # after every configuration, so a long GPU run that is cut short keeps what it measured
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(rows, indent=1))


def default_out(device: torch.device) -> str:
    """File name under bench/results/, e.g. antibody_overhead-cpu.json or
    antibody_overhead-nvidia-h100-80gb-hbm3.json."""
    return "antibody_overhead-" + re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-") + ".json"


if __name__ == "__main__":
    main()
