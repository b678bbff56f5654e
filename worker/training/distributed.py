"""Data parallelism for Antibody's step: each rank takes a share of the logical batch, and the weights stay a
softmax over the **whole** batch, as on one device (issue "Faster than TRL …", scope 5).

Each rank accumulates its micro-batches exactly as one process does (``fine_tuning_step.antibody_backward``):
e_i = exp(r_i/τ − m_k) against its own running max m_k, a gradient g_k = Σ e_i ∇nll_i and a denominator
D_k = Σ e_i N_i. Then three collectives make it the one-process gradient of the global batch:

    M = max_k m_k                          (all-reduce MAX)
    D = Σ_k exp(m_k − M) · D_k             (all-reduce SUM)
    g = Σ_k exp(m_k − M) · g_k / D         (all-reduce SUM of the rescaled gradients)

The gradients are all-reduced here rather than by DDP's bucket hooks because each rank's factor exp(m_k − M) is
known only after every rank's last micro-batch; a LoRA's trainable parameters are a few MB, so one flat
all-reduce per step is cheap. Every rank then holds the same gradient, so the same optimizer step keeps the
replicas identical. A rank whose share has no trained token contributes nothing (factor 0).
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from datetime import timedelta

import torch
import torch.distributed as dist


def global_scale(running_max: float | None, denom: float, device: torch.device) -> float:
    """The factor this rank's accumulated gradient is multiplied by before the sum: exp(m_k − M) / D (0 when
    no rank has a trained token). ``running_max`` is None on a rank without one."""
    top = torch.tensor([-math.inf if running_max is None else running_max], dtype=torch.float64, device=device)
    dist.all_reduce(top, op=dist.ReduceOp.MAX)
    if top.item() == -math.inf:
        return 0.0
    factor = 0.0 if running_max is None else math.exp(running_max - top.item())
    total = torch.tensor([denom * factor], dtype=torch.float64, device=device)
    dist.all_reduce(total)
    return factor / total.item() if total.item() > 0 else 0.0


def sum_gradients(params: Sequence[torch.nn.Parameter], scale: float) -> None:
    """``p.grad ← Σ_ranks scale_k · p.grad_k`` for every trainable parameter, in one flat all-reduce."""
    if not params:
        return
    grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
    flat = torch.cat([g.reshape(-1).float() for g in grads]).mul_(scale)
    dist.all_reduce(flat)
    offset = 0
    for p in params:
        n = p.numel()
        p.grad = flat[offset : offset + n].view_as(p).to(p.dtype)
        offset += n


def gather(values: list) -> list:  # type: ignore[type-arg]
    """Every rank's ``values`` (CPU tensors, line numbers), in rank order."""
    out: list = [None] * dist.get_world_size()  # type: ignore[type-arg]
    dist.all_gather_object(out, values)
    return out


# --- one job on several ranks (torchrun sets RANK, WORLD_SIZE and LOCAL_RANK) -----------------------------------


TIMEOUT = timedelta(minutes=10)  # a collective waiting longer than this means a rank is gone: fail, not hang


def backend(device: str | None) -> str:
    return "nccl" if torch.cuda.is_available() and device != "cpu" else "gloo"


def start(device: str | None) -> torch.device:
    """Join the job's process group when launched by torchrun (NCCL on GPUs, gloo on CPU) and return this
    rank's device (``cuda:LOCAL_RANK`` unless ``device`` names one); a plain process runs alone."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and not dist.is_initialized():
        dist.init_process_group(backend(device), timeout=TIMEOUT)
    if device:
        return torch.device(device)
    if not torch.cuda.is_available():
        return torch.device("cpu")
    if dist.is_initialized():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return torch.device("cuda")


def world() -> tuple[int, int]:
    """(this rank, number of ranks); (0, 1) outside a process group."""
    if not dist.is_initialized():
        return 0, 1
    return dist.get_rank(), dist.get_world_size()


def leads() -> bool:
    """Rank 0 writes checkpoints, the adapter and reports, and talks to the outside (progress, stop requests)."""
    return world()[0] == 0


def share(items: Sequence, rank: int, size: int) -> list:  # type: ignore[type-arg]
    """This rank's contiguous slice of a batch (sizes differ by at most one; rank order = batch order)."""
    base, extra = divmod(len(items), size)
    start_at = rank * base + min(rank, extra)
    return list(items[start_at : start_at + base + (1 if rank < extra else 0)])


def agree(value: str | None) -> str | None:
    """Rank 0's ``value`` on every rank (a stop request must stop all ranks at the same step)."""
    if world()[1] == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    if world()[1] > 1:
        dist.barrier()
