"""What the per-step cost benches (antibody_overhead.py, alignment_step.py) share: random-init Llama shapes with a
LoRA adapter, synthetic chat batches, the common command line, the loop over configurations and the results file
name."""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

import torch

from worker.training.data import ChatExample, collate
from worker.training.model import add_lora

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


def random_model(shape: str, device: torch.device, dtype: torch.dtype, **overrides):
    """A random-init (seed 0) Llama of SHAPES[shape], built directly on ``device``; ``overrides`` change the config
    (e.g. ``vocab_size`` to match a tokenizer)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    with torch.device(device):
        return LlamaForCausalLM(LlamaConfig(max_position_embeddings=4096, **{**SHAPES[shape], **overrides})).to(dtype)


def random_chat_model(shape: str, device: torch.device, dtype: torch.dtype, **overrides):
    """(model, tokenizer): ``random_model`` with SmolLM2's tokenizer and a vocabulary of its size, for benches that
    generate or train on text where the real weights cannot go (a GPU machine)."""
    from worker.datasets import assets
    from worker.training.data import load_tokenizer

    tokenizer = load_tokenizer(assets.smollm2_tokenizer_dir())
    return random_model(shape, device, dtype, vocab_size=len(tokenizer), **overrides), tokenizer


def write_random_chat_model(shape: str, device: torch.device, dtype: torch.dtype, dest: Path) -> int:
    """Save ``random_chat_model`` as an HF folder (for benches that load a model by path, as a job does); returns
    its parameter count."""
    model, tokenizer = random_chat_model(shape, device, dtype)
    model.save_pretrained(dest, safe_serialization=True)
    tokenizer.save_pretrained(dest)
    n = sum(p.numel() for p in model.parameters())
    del model
    return n


def random_lora_model(
    shape: str, device: torch.device, dtype: torch.dtype, rank: int, alpha: float, targets: Sequence[str]
):
    """A random-init (seed 0) Llama of SHAPES[shape] in train mode, with a LoRA adapter on ``targets``."""
    model = add_lora(random_model(shape, device, dtype), rank, alpha, 0.0, tuple(targets))
    with torch.no_grad():  # a trained-looking adapter, so that LoRA is not a no-op in the comparison
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


def device_name(device: torch.device) -> str:
    return torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"


def results_name(bench: str, device: torch.device) -> str:
    """File name under bench/results/, e.g. antibody_overhead-cpu.json or
    alignment_step-nvidia-h100-80gb-hbm3.json."""
    return bench + "-" + re.sub(r"[^a-z0-9]+", "-", device_name(device).lower()).strip("-") + ".json"


def emit(out: dict, out_path: Path | None = None, save_as: str | None = None) -> None:
    """Print a bench's JSON and write it to ``out_path``, else to bench/results/``save_as`` when given."""
    text = json.dumps(out, indent=1)
    print(text)
    target = out_path or (Path(__file__).parent / "results" / save_as if save_as else None)
    if target:
        target.write_text(text + "\n")


def config_row(device: torch.device, shape: str, dtype: torch.dtype, batch: int, seq_len: int) -> dict:
    """The leading fields of a result row: what was measured where."""
    return {
        "device": device_name(device),
        "shape": shape,
        "dtype": str(dtype).replace("torch.", ""),
        "batch": batch,
        "seq_len": seq_len,
    }


def add_step_args(parser: argparse.ArgumentParser, *, default_config_help: str, lora_rank: int) -> None:
    """The options both benches take; ``default_config_help`` names the default configurations in --config's help."""
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--shape", action="append", choices=sorted(SHAPES), help="repeatable")
    parser.add_argument("--config", action="append", help=f"BATCHxSEQ_LEN, repeatable (default {default_config_help})")
    parser.add_argument("--dtype", choices=["auto", "float32", "bfloat16"], default="auto")
    parser.add_argument("--lora-rank", type=int, default=lora_rank)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads")
    parser.add_argument("--out", type=Path, default=None, help="write the JSON list here (default: print only)")
    parser.add_argument("--save", action="store_true", help="write to bench/results/<bench>-<device>.json")


def setup(args: argparse.Namespace) -> tuple[torch.device, torch.dtype, list[tuple[int, ...]]]:
    """The device, torch threads, dtype (auto: bfloat16 on CUDA, else float32) and the (batch, seq_len) configs."""
    device = torch.device(args.device)
    if args.threads:
        torch.set_num_threads(args.threads)
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(
        args.dtype, torch.bfloat16 if device.type == "cuda" else torch.float32
    )
    configs = [tuple(int(x) for x in c.lower().split("x")) for c in (args.config or [])]
    return device, dtype, configs


def run_plan(
    bench: str,
    args: argparse.Namespace,
    run: Callable[..., dict],
    *,
    default_configs: list[tuple[int, int]],
    cpu_default: list[tuple[str, int, int]],
) -> list[dict]:
    """Call ``run(shape, batch, seq_len, device, dtype, args)`` for each configuration and print the rows as JSON.

    The plan: each --shape with each --config (default ``default_configs``); with no --shape, ``cpu_default`` on CPU
    and the 1b shape with ``default_configs`` elsewhere. With --out or --save the rows are written as well.
    """
    device, dtype, configs = setup(args)
    if args.shape:
        plan = [(s, b, t) for s in args.shape for b, t in (configs or default_configs)]
    else:
        plan = cpu_default if device.type == "cpu" else [("1b", b, t) for b, t in default_configs]
    out = args.out or (Path(__file__).parent / "results" / results_name(bench, device) if args.save else None)
    rows = []
    for shape, b, t in plan:
        rows.append(run(shape, b, t, device, dtype, args))
        print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
        if out:  # after every configuration, so a long GPU run that is cut short keeps what it measured
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_text(json.dumps(rows, indent=1) + "\n")
    print(json.dumps(rows, indent=1))
    return rows
