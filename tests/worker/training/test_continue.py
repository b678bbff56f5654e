"""Training that continues a saved adapter (fine-tuning a fine-tuned model): it starts from the parent's LoRA
weights, under the parent's LoRA config, and a resume never mixes runs with different parents."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest
import torch

from tests.worker.training.test_trainer import adapter_weights, tiny_config
from worker.training import TrainConfig, train


def _config(tiny_model: Path, data: Path, out: Path, **overrides) -> TrainConfig:
    return tiny_config(tiny_model, data, out, **{"n_epochs": 1, **overrides})


@pytest.fixture
def parent(tiny_model: Path, arithmetic_file: Path, tmp_path: Path) -> Path:
    result = train(_config(tiny_model, arithmetic_file, tmp_path / "parent"))
    assert result.adapter_dir is not None
    return result.adapter_dir


def test_training_starts_from_the_parent_adapter(tiny_model, arithmetic_file, tmp_path, parent: Path) -> None:
    # The child asks for rank 8 and other modules; the parent's rank-4 q/k/v/o config must win.
    child = _config(tiny_model, arithmetic_file, tmp_path / "child", init_adapter_dir=parent)
    child = replace(child, lora_rank=8, target_modules=("q_proj",))
    # Pausing before the first step checkpoints the weights training starts from.
    start = train(child, should_stop=lambda: "pause")
    assert start.stopped == "pause" and start.steps == 0 and start.last_checkpoint is not None
    before, at_zero = adapter_weights(parent), adapter_weights(start.last_checkpoint / "adapter")
    assert before.keys() == at_zero.keys() and any("v_proj" in k for k in before)
    assert all(torch.equal(before[k], at_zero[k]) for k in before)

    done = train(replace(child, output_dir=tmp_path / "child-full"))
    assert done.stopped is None and done.steps == done.total_steps == 3
    after = adapter_weights(done.adapter_dir)
    assert {k: v.shape for k, v in after.items()} == {k: v.shape for k, v in before.items()}
    assert any(not torch.equal(before[k], after[k]) for k in before)  # trained further, not just copied


def test_resume_refuses_a_checkpoint_with_a_different_starting_adapter(
    tiny_model, arithmetic_file, tmp_path, parent: Path
) -> None:
    paused = train(
        _config(tiny_model, arithmetic_file, tmp_path / "child", init_adapter_dir=parent), should_stop=lambda: "pause"
    )
    with pytest.raises(ValueError, match="different data or hyperparameters"):
        # Same shapes and hyperparameters, but a fresh LoRA instead of the parent's.
        train(_config(tiny_model, arithmetic_file, tmp_path / "fresh", resume_from=paused.last_checkpoint))
    resumed = train(
        _config(
            tiny_model, arithmetic_file, tmp_path / "child", init_adapter_dir=parent, resume_from=paused.last_checkpoint
        )
    )
    assert resumed.stopped is None and resumed.steps == 3
