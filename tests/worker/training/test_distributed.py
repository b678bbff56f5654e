"""Data-parallel Antibody: two CPU ranks (gloo), each with half of a batch, end with the gradient and the
weights of one process that saw the whole batch: the softmax spans the global batch, not each rank's share."""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file

from tests.servers import free_port
from tests.worker.training.samples import lora_model, make_examples
from worker.training.data import collate
from worker.training.fine_tuning_step import antibody_backward

LENGTHS = [(3, 5, 4), (17, 2, 9), (1, 7, 2), (9, 9, 1), (30, 1, 6), (6, 12, 3), (2, 3, 5), (4, 0, 3)]
TAU = 0.1
# (rank 0's micro-batches, rank 1's). "uneven": rank 1 holds the batch's largest r (example 4), so rank 0's
# running max (which also grows between its own micro-batches) is below the global one and its gradient must be
# rescaled. "idle": rank 1 has only a line with no trained token; it contributes nothing but must take part.
SPLITS = {"uneven": ([[0, 1], [2, 3], [5, 6]], [[4, 7]]), "idle": ([[0, 1, 2], [3, 4, 5, 6]], [[7]])}


def _grads(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}


def _rank(rank: int, port: int, tiny_model: Path, out: Path) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=2)
    try:
        model, examples, results = lora_model(tiny_model), make_examples(LENGTHS, seed=3), {}
        for name, split in SPLITS.items():
            model.zero_grad(set_to_none=True)
            batches = [collate([examples[i] for i in group], 2) for group in split[rank]]
            stats = antibody_backward(model, batches, TAU, "mean_token", "prefix_kv", data_parallel=True)
            results[name] = (_grads(model), stats)
        (out / f"rank{rank}.pkl").write_bytes(pickle.dumps(results))
    finally:
        dist.destroy_process_group()


def test_two_ranks_get_the_whole_batchs_gradient_and_weights(tiny_model: Path, tmp_path: Path) -> None:
    mp.spawn(_rank, args=(free_port(), tiny_model, tmp_path), nprocs=2, join=True)
    ranks = [pickle.loads((tmp_path / f"rank{k}.pkl").read_bytes()) for k in range(2)]
    model, examples = lora_model(tiny_model), make_examples(LENGTHS, seed=3)
    for name, (first, second) in SPLITS.items():
        order = [i for groups in (first, second) for group in groups for i in group]
        model.zero_grad(set_to_none=True)
        whole = antibody_backward(model, [collate([examples[i] for i in order], 2)], TAU, "mean_token", "prefix_kv")
        expected = _grads(model)
        assert 1e-3 < whole.weights[whole.weights > 0].min() < 0.2 * whole.weights.max()  # far from uniform
        assert whole.r[whole.lines.index(5)] == whole.r.nan_to_num(-1.0).max()  # example 4 (line 5), as SPLITS says
        for grads, stats in (ranks[0][name], ranks[1][name]):
            assert stats.lines == whole.lines
            torch.testing.assert_close(stats.weights, whole.weights, atol=1e-6, rtol=1e-5)
            torch.testing.assert_close(stats.r, whole.r, atol=1e-5, rtol=0, equal_nan=True)
            for param, g in grads.items():
                torch.testing.assert_close(g, expected[param], atol=1e-6, rtol=1e-4, msg=f"{name} {param}")


def _train(tiny_model: Path, data: Path, out: Path, ranks: int, *extra: str) -> subprocess.CompletedProcess:
    """`ftaas train` on one process, or under torchrun on ``ranks`` CPU ranks (gloo)."""
    args = ["--base", str(tiny_model), "--train", str(data), "--out", str(out), "--epochs", "2", "--batch-size", "5",
            "--lora-rank", "4", "--max-seq-len", "64", "--tau", "0.1", "--checkpoint-every", "2", "--seed", "1",
            "--device", "cpu", *extra]  # fmt: skip
    launch = [sys.executable, "-m", "service.cli"]
    if ranks > 1:
        launch = [sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", str(ranks),
                  "--master-port", str(free_port()), "-m", "service.cli"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    run = subprocess.run([*launch, "train", *args], capture_output=True, text=True, timeout=600, env=env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-5000:]
    return run


def _adapter(out: Path) -> dict[str, torch.Tensor]:
    return load_file(out / "adapter" / "adapter_model.safetensors")


def test_torchrun_trains_the_adapter_one_process_trains_and_resumes_across_ranks(
    tiny_model: Path, arithmetic_file: Path, tmp_path: Path
) -> None:
    alone = _train(tiny_model, arithmetic_file, tmp_path / "alone", 1)
    pair = _train(tiny_model, arithmetic_file, tmp_path / "pair", 2)
    assert "steps: 6" in alone.stdout and pair.stdout.count("steps: 6") == 1  # rank 0 reports, once
    expected = _adapter(tmp_path / "alone")
    assert any(v.abs().max() > 0 for k, v in expected.items() if "lora_B" in k)  # it trained
    for name, value in _adapter(tmp_path / "pair").items():
        torch.testing.assert_close(value, expected[name], atol=2e-5, rtol=1e-4, msg=name)
    alone_report = json.loads((tmp_path / "alone" / "attenuation.json").read_text())
    pair_report = json.loads((tmp_path / "pair" / "attenuation.json").read_text())
    assert [r["line"] for r in pair_report] == [r["line"] for r in alone_report]
    for a, b in zip(alone_report, pair_report, strict=True):
        assert b["mean_weight"] == pytest.approx(a["mean_weight"], abs=1e-5)

    # A checkpoint the pair wrote mid-run, resumed by two ranks again: the same adapter as the run that went on.
    step_4 = tmp_path / "pair" / "checkpoints" / "step-4"
    _train(tiny_model, arithmetic_file, tmp_path / "resumed", 2, "--resume-from", str(step_4))
    for name, value in _adapter(tmp_path / "resumed").items():
        torch.testing.assert_close(value, _adapter(tmp_path / "pair")[name], atol=1e-6, rtol=1e-5, msg=name)
