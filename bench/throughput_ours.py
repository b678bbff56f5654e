"""Our arms of ``throughput.py``: ``worker.training.trainer.train`` as a job runs it (``antibody_packed``: packed,
the job default), the padded reference layout (``antibody``), and our plain-SFT mode, padded (``sft``) and packed
(``sft_packed``): uniform weights and no refusal pass, r = 0 for every line (``TrainConfig.ratio_model="none"``)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

import torch


def run_ours(arm: str, spec: dict[str, Any], stamps: list[float]) -> dict[str, Any]:
    import worker.training.trainer as trainer
    from worker.training.config import TrainConfig

    cfg = TrainConfig(
        base_model_dir=Path(spec["model_dir"]),
        train_file=Path(spec["train_file"]),
        output_dir=Path(spec["out"]),
        n_epochs=spec["epochs"],
        batch_size=spec["batch_size"],
        seed=spec["seed"],
        lora_rank=spec["lora_rank"],
        lora_alpha=2.0 * spec["lora_rank"],
        target_modules=tuple(spec["targets"]),
        max_seq_len=spec["max_seq_len"],
        ratio_model="none" if arm.startswith("sft") else "current",
        packing=arm.endswith("_packed"),
        device=spec["device"],
    )
    examples = trainer._load_examples(cfg)[0]
    sync = torch.cuda.synchronize if spec["device"].startswith("cuda") else lambda: None

    def should_stop() -> None:
        if not stamps:
            sync()
            stamps.append(time.perf_counter())

    seen: list[int] = [0]

    def on_step(metrics: Any) -> None:
        sync()
        stamps.append(time.perf_counter())
        seen.append(metrics.trained_tokens)  # cumulative x‖y tokens

    result = trainer.train(cfg, on_step=on_step, should_stop=should_stop)
    losses = [m["train_loss_unweighted"] for m in result.metrics]
    return {
        "trained_tokens": spec["epochs"] * sum(sum(e.response_mask) for e in examples),
        "tokens": result.trained_tokens,
        "step_tokens": [b - a for a, b in zip(seen, seen[1:], strict=False)],
        "loss": round(statistics.mean(losses[-3:]), 4),
    }
