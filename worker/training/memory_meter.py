"""Peak tensor memory of a training step, on CUDA and on CPU, comparable between two kinds of step.

CUDA: ``torch.cuda.max_memory_allocated`` (every live tensor: weights, optimizer state, gradients,
activations, temporaries).

CPU has no allocator statistics, and tracemalloc does not see torch's allocations (they bypass Python's
allocator). We therefore measure the same quantity in two parts:
- the tensors resident before the step (weights, buffers, gradients, optimizer state), summed exactly over
  their storages;
- plus the peak growth of the C heap during the step (glibc ``mallinfo2``: bytes in use in malloc's arenas and
  in mmapped chunks, where torch's CPU allocator puts tensors), sampled after every aten operator, forward and
  backward, through a ``TorchDispatchMode``.
Allocations inside one operator that are freed before it returns are missed, identically for every step kind.
"""

from __future__ import annotations

import ctypes
import ctypes.util
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode


class _MallInfo2(ctypes.Structure):
    _fields_ = [
        (name, ctypes.c_size_t)
        for name in "arena ordblks smblks hblks hblkhd usmblks fsmblks uordblks fordblks keepcost".split()
    ]


_libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
_mallinfo2 = getattr(_libc, "mallinfo2", None)
if _mallinfo2 is not None:
    _mallinfo2.restype = _MallInfo2


def heap_in_use() -> int:
    """Bytes malloc currently has handed out (arenas + mmapped chunks); glibc only."""
    if _mallinfo2 is None:
        raise RuntimeError("CPU memory measurement needs glibc's mallinfo2")
    info = _mallinfo2()
    return int(info.uordblks + info.hblkhd)


def resident_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (tied weights and views are counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        if isinstance(t, torch.Tensor) and t.device.type != "meta":
            storage = t.untyped_storage()
            seen[storage.data_ptr()] = storage.nbytes()
    return sum(seen.values())


def training_tensors(model: torch.nn.Module, optimizer: torch.optim.Optimizer | None) -> list[torch.Tensor]:
    """Weights, buffers, gradients and optimizer state: what lives across steps."""
    out = [*model.parameters(), *model.buffers()]
    out += [p.grad for p in model.parameters() if p.grad is not None]
    if optimizer is not None:
        out += [v for state in optimizer.state.values() for v in state.values() if isinstance(v, torch.Tensor)]
    return out


class _HeapPeak(TorchDispatchMode):
    def __init__(self) -> None:
        super().__init__()
        self.start = heap_in_use()
        self.peak = self.start

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        out = func(*args, **(kwargs or {}))
        self.peak = max(self.peak, heap_in_use())
        return out


@dataclass
class MemoryPeak:
    resident: int = 0  # tensor bytes live before the step
    growth: int = 0  # peak bytes allocated on top of them during the step
    peak: int = 0  # resident + growth (on CUDA: max_memory_allocated)


@contextmanager
def measure_peak(
    device: torch.device, model: torch.nn.Module, optimizer: torch.optim.Optimizer | None = None
) -> Iterator[MemoryPeak]:
    """Peak tensor memory of the code inside the block (see the module docstring)."""
    result = MemoryPeak()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        result.resident = torch.cuda.memory_allocated(device)
        yield result
        torch.cuda.synchronize(device)
        result.peak = torch.cuda.max_memory_allocated(device)
        result.growth = result.peak - result.resident
        return
    result.resident = resident_bytes(training_tensors(model, optimizer))
    mode = _HeapPeak()
    with mode:
        yield result
    result.growth = max(0, mode.peak - mode.start)
    result.peak = result.resident + result.growth
