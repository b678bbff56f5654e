"""Shared by the pass tests: a tiny LoRA model whose adapter is not a no-op, and chat examples of chosen lengths."""

from __future__ import annotations

from pathlib import Path

import torch

from worker.training.data import ChatExample
from worker.training.model import add_lora, load_base_model


def lora_model(tiny_model: Path, attn: str = "sdpa"):
    torch.manual_seed(0)
    model = load_base_model(tiny_model, torch.device("cpu"), torch.float32)
    model.set_attn_implementation(attn)
    model = add_lora(model, rank=4, alpha=8, dropout=0.0, target_modules=("q_proj", "k_proj", "v_proj", "o_proj"))
    with torch.no_grad():  # non-zero B so that the adapter actually changes the keys and values
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(std=0.3)
    return model


def make_examples(lengths: list[tuple[int, int, int]], seed: int = 0) -> list[ChatExample]:
    """One example per (prompt, response, refusal) length triple, random token ids; a response longer than two
    tokens opens with a context token (mask 0)."""
    gen = torch.Generator().manual_seed(seed)
    out = []
    for i, (p, r, rr) in enumerate(lengths):
        ids = torch.randint(5, 49000, (p + r + rr,), generator=gen).tolist()
        mask = [1] * r
        if r > 2:
            mask[0] = 0
        out.append(ChatExample(line=i + 1, prompt_ids=ids[:p], response_ids=ids[p : p + r], response_mask=mask,
                               refusal_ids=ids[p + r :]))
    return out
