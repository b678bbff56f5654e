"""Data-parallel Antibody: two CPU ranks (gloo), each with half of a batch, end with the gradient and the
weights of one process that saw the whole batch: the softmax spans the global batch, not each rank's share."""

from __future__ import annotations

import pickle
from pathlib import Path

import torch
import torch.distributed as dist
import torch.multiprocessing as mp

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
