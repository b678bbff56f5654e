"""The loop skeleton shared by fine-tuning (``trainer.train``) and alignment (``alignment.align``).

    resume? → while step < total: stop/cancel/pause? → run.step(step) → on_step → checkpoint if due →
    final adapter

Each kind of training supplies a ``Run``: its optimizer step and the JSON state it needs to resume. The loop
owns the step counter, the resume fingerprint check, the periodic and final checkpoints (``checkpoint.py``),
the stop protocol and the final adapter. A checkpoint's ``trainer_state.json`` is
``{"step": …, **run.state(), "fingerprint": …}``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import torch
from torch import nn

import worker.training.distributed as distributed
from worker.training.checkpoint import load_checkpoint, prune_checkpoints, save_checkpoint
from worker.training.config import StopReason, StopRequested

Row = TypeVar("Row")
RowCo = TypeVar("RowCo", covariant=True)
OnCheckpoint = Callable[[int, Path], None]
ShouldStop = Callable[[], str | None]


class Run(Protocol[RowCo]):
    """One kind of training, as the loop drives it."""

    def step(self, step: int) -> RowCo:
        """Take optimizer step ``step`` (0-based: the batch of that step), record its metrics row in the run's
        own state and return it (for ``on_step``)."""
        ...

    def state(self) -> dict[str, Any]:
        """JSON-serialisable state to checkpoint besides the step counter (metrics, running sums, …)."""
        ...

    def restore(self, state: dict[str, Any]) -> None:
        """Take back what ``state`` returned (the loaded ``trainer_state.json``)."""
        ...


@dataclass
class LoopSpec:
    """What the loop checkpoints and where. ``scheduler`` is any object with ``state_dict``/``load_state_dict``."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    scheduler: Any
    output_dir: Path
    total_steps: int
    fingerprint: str  # what must not change between a run and its resume
    checkpoint_every: int = 0  # steps; 0 = only at the end
    keep_checkpoints: int = 2


@dataclass
class LoopResult:
    """``adapter_dir`` is ``output_dir/adapter`` after the last step, None when stopped."""

    steps: int
    adapter_dir: Path | None
    stopped: StopReason | None
    last_checkpoint: Path | None


def checkpoint_due(step: int, every: int) -> bool:
    """Whether the periodic checkpoint falls on (1-based) ``step``."""
    return every > 0 and step % every == 0


def resume(spec: LoopSpec, run: Run[Any], path: Path) -> int:
    """Restore model, optimizer, scheduler, RNG and the run's state from ``path``; returns the step reached.
    Raises ValueError for a checkpoint written with different data or hyperparameters."""
    state = load_checkpoint(Path(path), spec.model, spec.optimizer, spec.scheduler)
    if state["fingerprint"] != spec.fingerprint:
        raise ValueError("checkpoint was written by a run with different data or hyperparameters")
    run.restore(state)
    return state["step"]


def run_loop(
    spec: LoopSpec,
    run: Run[Row],
    *,
    resume_from: Path | None = None,
    on_step: Callable[[Row], None] | None = None,
    on_checkpoint: OnCheckpoint | None = None,
    should_stop: ShouldStop | None = None,
) -> LoopResult:
    """Drive ``run`` from step 0 (or ``resume_from``) to ``spec.total_steps``.

    Before each step ``should_stop()`` may answer ``"cancel"`` (stop now) or ``"pause"`` (stop after
    checkpointing the current step, unless that checkpoint exists already); a ``StopRequested`` raised by a
    callback stops the same way. A checkpoint is written every ``checkpoint_every`` steps and after the last
    step, ``on_checkpoint(step, path)`` follows each, and the newest ``keep_checkpoints`` are kept. After the
    last step the adapter is saved to ``output_dir/adapter``.
    """
    ckpt_root = Path(spec.output_dir) / "checkpoints"
    step = resume(spec, run, resume_from) if resume_from else 0

    # Several ranks (distributed.py): rank 0 alone writes and hears the outside; its stop decision is agreed at
    # the top of each step so every rank stops at the same one, and a stop raised by its on_step waits for that.
    leader, many = distributed.leads(), distributed.world()[1] > 1

    def checkpoint() -> Path:
        path = ckpt_root / f"step-{step}"
        if leader:
            state = {"step": step, **run.state(), "fingerprint": spec.fingerprint}
            path = save_checkpoint(ckpt_root, step, spec.model, spec.optimizer, spec.scheduler, state)
            if on_checkpoint:
                on_checkpoint(step, path)
            prune_checkpoints(ckpt_root, spec.keep_checkpoints)
        distributed.barrier()
        return path

    last_ckpt: Path | None = None
    pending: str | None = None
    try:
        while step < spec.total_steps:
            reason = distributed.agree(pending or (should_stop() if should_stop and leader else None))
            if reason in ("cancel", "pause"):
                raise StopRequested(reason, step)  # type: ignore[arg-type]
            row = run.step(step)
            step += 1
            if on_step and leader:
                pending = _deferred(on_step, row) if many else on_step(row)
            if checkpoint_due(step, spec.checkpoint_every) or step == spec.total_steps:
                last_ckpt = checkpoint()
    except StopRequested as stop:
        if stop.reason == "pause" and (last_ckpt is None or last_ckpt.name != f"step-{step}"):
            last_ckpt = checkpoint()
        return LoopResult(step, None, stop.reason, last_ckpt)

    adapter_dir = Path(spec.output_dir) / "adapter"
    if leader:
        spec.model.save_pretrained(adapter_dir, safe_serialization=True)  # type: ignore[operator]
    distributed.barrier()
    return LoopResult(step, adapter_dir, None, last_ckpt)


def _deferred(on_step: Callable[[Row], None], row: Row) -> str | None:
    """``on_step(row)``, with a StopRequested it raises turned into the reason the ranks agree on next."""
    try:
        on_step(row)
    except StopRequested as stop:
        return stop.reason
    return None
