"""What a failed job tells its owner: an exception from a job's run becomes OpenAI's `error` object, with a code a
client can act on (out of memory: a smaller batch; object store down: try again later), and the test-only fault
hook that lets tests/faults/ reach those paths on a CPU."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from service.config import Settings
from service.db import session_scope
from service.fine_tuning import repository as jobs
from worker.store import exception_chain, unreachable
from worker.training import StepMetrics


class JobFailed(Exception):
    def __init__(self, code: str, message: str, param: str | None = None) -> None:
        super().__init__(message)
        self.error = {"code": code, "message": message, "param": param}


class InjectedOutOfMemory(torch.OutOfMemoryError):
    """Raised by FTAAS_FAULT_INJECT=oom_above_batch:B (tests only)."""


def _is_oom(exc: BaseException) -> bool:
    # CUDA raises torch.OutOfMemoryError; the CPU and MPS allocators raise a plain RuntimeError saying so
    return any(
        isinstance(e, torch.OutOfMemoryError) or (isinstance(e, RuntimeError) and "out of memory" in str(e).lower())
        for e in exception_chain(exc)
    )


def _oom_error(settings: Settings, job_id: str) -> dict[str, Any]:
    with session_scope(settings.database_url) as session:
        batch = jobs.get_one(session, job_id).hyperparameters.get("batch_size")
    smaller = max(1, int(batch) // 2) if isinstance(batch, int) else 1
    message = (
        f"Training ran out of GPU memory with batch_size {batch} at up to {settings.max_seq_len} tokens per "
        f"example. Create the job again with a smaller batch_size (e.g. {smaller}) or shorter examples; "
        "the provider can also lower FTAAS_MAX_SEQ_LEN."
    )
    if torch.cuda.is_available():  # give the cached blocks back so the worker's next job starts clean
        torch.cuda.empty_cache()
    return {"code": "out_of_memory", "param": "hyperparameters.batch_size", "message": message}


def error_for(exc: Exception, settings: Settings, job_id: str) -> dict[str, Any]:
    """The job's `error` for the exception that ended its run."""
    if isinstance(exc, JobFailed):
        return exc.error
    if _is_oom(exc):
        return _oom_error(settings, job_id)
    if (cause := unreachable(exc)) is not None:
        message = (
            f"The object store was unreachable while the job read or saved its artifacts; gave up after retrying "
            f"with backoff for up to {settings.store_retry_s:.0f} s ({cause}). Nothing partial was published; "
            "create the job again once the store is back."
        )
        return {"code": "object_store_unavailable", "param": None, "message": message}
    return {"code": "training_error", "param": None, "message": f"{type(exc).__name__}: {exc}"}


def with_fault_injection(
    settings: Settings, batch_size: int, on_step: Callable[[StepMetrics], None]
) -> Callable[[StepMetrics], None]:
    """`on_step`, failing the way FTAAS_FAULT_INJECT asks (tests only; unset, it is `on_step` itself).

    ``oom_above_batch:B`` plays a device that holds at most B examples per step: a job with a larger batch_size
    raises torch.OutOfMemoryError after its first step, where a real allocation failure would surface.
    """
    kind, _, arg = (settings.fault_inject or "").partition(":")
    if kind != "oom_above_batch" or batch_size <= int(arg):
        return on_step

    def inject(m: StepMetrics) -> None:
        on_step(m)
        raise InjectedOutOfMemory(f"CUDA out of memory (injected by FTAAS_FAULT_INJECT={settings.fault_inject})")

    return inject
