"""Activation checkpointing on, off, or ``"auto"``: decided before the model loads, from the device's free memory
and an estimate of what the largest micro-batch's training step needs.

The estimate (bytes, for a Llama-style decoder with a frozen base and a LoRA on it; ``d`` = bytes per element):

- weights: the parameter count from the safetensors headers × ``d``;
- per token and layer: ``d·(7h + 2·kv + 4i) + 8h`` (the tensors saved for backward: norms, q/k/v, attention
  output, the MLP's gate/up/product, and the RMSNorms' fp32 upcasts);
- per token: ``10·vocab`` for the logits and their fp32 loss (only ``loss_chunk_tokens`` rows at once when set);
- checkpointed, a layer keeps only its input (``d·h`` per token) and one layer is rebuilt at a time.

Calibrated on the H200 (1B Llama shape, bf16, ``bench/results/antibody_overhead-nvidia-h200.json``): it predicts
13.8 GiB at 8×512 and 49.0 GiB at 16×1024 against measured peaks of 14.4 and 49.6 GiB, so ``HEADROOM`` keeps a
share of the free memory for what it leaves out (allocator fragmentation, the optimizer, the refusal pass).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from worker.training.config import TrainConfig
from worker.training.data import ChatExample

HEADROOM = 0.85  # checkpoint when the estimate exceeds this share of the free memory
LOGIT_BYTES = 10  # per vocabulary entry and token: the logits (bf16 or fp32) and the loss's fp32 copies
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Shape:
    layers: int
    hidden: int
    intermediate: int
    kv_hidden: int
    vocab: int
    parameters: int

    @classmethod
    def of(cls, model_dir: Path) -> Shape:
        """The shape in ``config.json`` and the parameter count in the safetensors headers (nothing is loaded)."""
        config = json.loads((Path(model_dir) / "config.json").read_text())
        hidden = config["hidden_size"]
        heads = config["num_attention_heads"]
        head_dim = config.get("head_dim") or hidden // heads
        return cls(
            layers=config["num_hidden_layers"],
            hidden=hidden,
            intermediate=config["intermediate_size"],
            kv_hidden=config.get("num_key_value_heads", heads) * head_dim,
            vocab=config["vocab_size"],
            parameters=_parameter_count(Path(model_dir)),
        )


def _parameter_count(model_dir: Path) -> int:
    from safetensors import safe_open

    total = 0
    for path in sorted(model_dir.glob("*.safetensors")):
        with safe_open(path, framework="pt") as tensors:
            for name in tensors.keys():  # noqa: SIM118 (safe_open is not a mapping)
                count = 1
                for size in tensors.get_slice(name).get_shape():
                    count *= size
                total += count
    return total


def step_bytes(
    shape: Shape, tokens: int, dtype_bytes: int, checkpointing: bool, loss_chunk_tokens: int | None = None
) -> int:
    """Estimated peak bytes of one training step over ``tokens`` tokens (see the module docstring)."""
    per_layer = dtype_bytes * (7 * shape.hidden + 2 * shape.kv_hidden + 4 * shape.intermediate) + 8 * shape.hidden
    if checkpointing:
        layers = shape.layers * dtype_bytes * shape.hidden + per_layer
    else:
        layers = shape.layers * per_layer
    logit_rows = tokens if loss_chunk_tokens is None else min(tokens, loss_chunk_tokens)
    return shape.parameters * dtype_bytes + tokens * layers + logit_rows * shape.vocab * LOGIT_BYTES


def free_bytes(device: torch.device) -> int:
    """What the device can still allocate: CUDA's free memory, or the host's MemAvailable on CPU."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def choose(
    cfg: TrainConfig, examples: Sequence[ChatExample], ranks: int, device: torch.device, dtype: torch.dtype
) -> bool:
    """``cfg.gradient_checkpointing`` when it is a bool; for ``"auto"``, checkpoint only when the largest
    micro-batch this rank trains (its longest sample × the micro-batch size) would not fit otherwise."""
    if cfg.gradient_checkpointing != "auto":
        return bool(cfg.gradient_checkpointing)
    share = -(-min(cfg.batch_size, len(examples)) // ranks)  # this rank's samples of a batch
    tokens = min(cfg.micro_batch_size or share, share) * max(e.n_tokens for e in examples)
    d = torch.empty((), dtype=dtype).element_size()
    need = step_bytes(Shape.of(cfg.base_model_dir), tokens, d, False, cfg.loss_chunk_tokens)
    free = free_bytes(device)
    on = need > HEADROOM * free
    log.info(
        "activation checkpointing %s: a %d-token micro-batch needs ~%.1f GiB, %.1f GiB free on %s",
        "on" if on else "off",
        tokens,
        need / 2**30,
        free / 2**30,
        device,
    )
    return on
