"""The compact per-step columns the alignment manifest carries for the alignment page's charts."""

from __future__ import annotations

import json
import math

from worker.training.alignment_config import STEP_COLUMNS, AlignStepMetrics, step_columns


def _row(step: int, **kw) -> dict:
    antibody = dict(loss_align=1 / 3, loss_harm=2.0, loss_harm_pert=1.9876543, loss_refusal=0.5, lambda_t=4.9,
                    lambda_raw=5.1, cos_align_sharp=0.1, cos_align_harm=-0.2, cos_align_refusal=0.3)  # fmt: skip
    return AlignStepMetrics(step=step, total_steps=9, epoch=1, mode="antibody", learning_rate=5e-4, forward_passes=4,
                            backward_passes=4, **{**antibody, **kw}).row()  # fmt: skip


def test_rows_become_rounded_columns_with_the_sharpness_loss() -> None:
    cols = step_columns([_row(1), _row(2, lambda_t=float("nan")), _row(3)])
    assert list(cols) == list(STEP_COLUMNS) and cols["step"] == [1, 2, 3]
    assert cols["loss_align"] == [0.33333] * 3  # 5 significant digits
    assert cols["loss_sharp"] == [0.012346] * 3  # from the unrounded losses
    assert cols["lambda_t"] == [4.9, None, 4.9]  # NaN is not JSON
    assert "NaN" not in json.dumps(cols)


def test_sft_rows_keep_only_the_columns_they_have() -> None:
    rows = [AlignStepMetrics(step=s, total_steps=2, epoch=1, mode="sft", learning_rate=5e-4, forward_passes=1,
                             backward_passes=1, loss_align=float(s)).row() for s in (1, 2)]  # fmt: skip
    assert step_columns(rows) == {"step": [1, 2], "loss_align": [1.0, 2.0]}
    assert step_columns([]) == {}


def test_a_long_run_is_downsampled_evenly_keeping_the_first_and_last_step() -> None:
    cols = step_columns([_row(s, loss_align=math.sqrt(s)) for s in range(1, 1001)], limit=500)
    steps = cols["step"]
    assert len(steps) == 500 and steps[0] == 1 and steps[-1] == 1000
    assert steps == sorted(set(steps)) and max(b - a for a, b in zip(steps, steps[1:], strict=False)) <= 3
    assert all(len(v) == 500 for v in cols.values())
    assert step_columns([_row(s) for s in range(1, 501)])["step"] == list(range(1, 501))  # at the cap: all of them
