"""`ranks.spread`: the worker's process is rank 0 of a job on N devices (here two gloo CPU ranks). It alone sees
the callbacks, its stop requests stop every rank at the same step, and no child rank outlives a failure."""

from __future__ import annotations

import os
from dataclasses import replace
from pathlib import Path

import pytest

from tests.worker.training.test_trainer import adapter_weights, tiny_config
from worker.training import ranks
from worker.training.config import StepMetrics
from worker.training.trainer import train


def _children() -> list[int]:
    """Live (not zombie) rank processes whose parent is this test process."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            stat = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            cmdline = (proc / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat[1]) == os.getpid() and stat[0] != "Z" and b"worker.training.ranks" in cmdline:
            found.append(int(proc.name))
    return found


def test_rank_zero_keeps_the_callbacks_and_trains_what_one_process_trains(
    tiny_model: Path, arithmetic_file: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(tiny_model, arithmetic_file, tmp_path / "pair", tau=0.1, device="cpu", checkpoint_every=2)
    rows: list[StepMetrics] = []
    checkpoints: list[int] = []
    with ranks.spread(cfg, 2):
        assert len(_children()) == 1  # rank 1
        result = train(cfg, on_step=rows.append, on_checkpoint=lambda step, _: checkpoints.append(step))
    assert [r.step for r in rows] == list(range(1, result.total_steps + 1))  # once per step, not once per rank
    assert checkpoints == [2, 4, 6] and result.adapter_dir is not None and not _children()
    alone = train(replace(cfg, output_dir=tmp_path / "alone"))
    expected = adapter_weights(alone.adapter_dir)
    for name, value in adapter_weights(result.adapter_dir).items():
        assert value.sub(expected[name]).abs().max().item() < 2e-5, name
    assert [r.weight_max for r in rows] == pytest.approx([m["weight_max"] for m in alone.metrics], abs=1e-5)


def test_a_cancel_stops_every_rank_at_the_same_step(tiny_model: Path, arithmetic_file: Path, tmp_path: Path) -> None:
    cfg = tiny_config(tiny_model, arithmetic_file, tmp_path / "out", device="cpu")
    steps: list[int] = []
    with ranks.spread(cfg, 2):  # the child ranks must leave too, or spread would wait for them and fail
        result = train(cfg, on_step=lambda m: steps.append(m.step), should_stop=lambda: "cancel" if steps else None)
    assert (result.stopped, result.steps, steps) == ("cancel", 1, [1]) and not _children()


def test_a_failure_on_rank_zero_takes_the_other_ranks_down(
    tiny_model: Path, arithmetic_file: Path, tmp_path: Path
) -> None:
    cfg = tiny_config(tiny_model, arithmetic_file, tmp_path / "out", device="cpu")

    def lost(_: StepMetrics) -> None:
        raise RuntimeError("the lease was lost")

    with pytest.raises(RuntimeError, match="lease was lost"), ranks.spread(cfg, 2):
        train(cfg, on_step=lost)
    assert not _children()
