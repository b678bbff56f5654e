import json
import logging
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import worker.training.memory_plan as memory_plan
from worker.training import TrainConfig, train
from worker.training.data import encode_file, load_tokenizer
from worker.training.memory_plan import Shape, choose, step_bytes
from worker.training.model import load_base_model
from worker.training.refusals import DEFAULT_REFUSALS

ROOT = Path(__file__).resolve().parents[3]
LLAMA_1B = Shape(layers=16, hidden=2048, intermediate=8192, kv_hidden=512, vocab=128256, parameters=1_073_809_408)


def config(tiny_model: Path, data: Path, out: Path, **overrides) -> TrainConfig:
    base = TrainConfig(
        base_model_dir=tiny_model, train_file=data, output_dir=out, n_epochs=1, batch_size=4, lora_rank=4, seed=3
    )
    return replace(base, **overrides)


def test_the_estimate_is_within_ten_percent_of_the_measured_h200_peaks() -> None:
    rows = json.loads((ROOT / "bench/results/antibody_overhead-nvidia-h200.json").read_text())
    for row in rows:
        estimate = step_bytes(LLAMA_1B, row["batch"] * row["seq_len"], 2, checkpointing=False)
        assert estimate / 2**30 == pytest.approx(row["sft_peak_gib"], rel=0.1)


def test_checkpointing_and_a_chunked_loss_shrink_the_estimate() -> None:
    full = step_bytes(LLAMA_1B, 16 * 1024, 2, checkpointing=False)
    assert step_bytes(LLAMA_1B, 16 * 1024, 2, checkpointing=True) < 0.6 * full
    assert step_bytes(LLAMA_1B, 16 * 1024, 2, checkpointing=False, loss_chunk_tokens=1024) < 0.65 * full
    assert step_bytes(LLAMA_1B, 8 * 512, 2, checkpointing=False) < full / 3


def test_the_shape_counts_the_parameters_without_loading_them(tiny_model: Path) -> None:
    model = load_base_model(tiny_model, torch.device("cpu"), torch.float32)
    distinct = {p.data_ptr(): p.numel() for p in model.parameters()}
    assert Shape.of(tiny_model).parameters == sum(distinct.values())
    assert Shape.of(tiny_model).layers == model.config.num_hidden_layers


def test_auto_checkpoints_only_when_the_step_does_not_fit(tiny_model, arithmetic_file, tmp_path, monkeypatch) -> None:
    examples = encode_file(arithmetic_file, load_tokenizer(tiny_model), 64, DEFAULT_REFUSALS)
    cfg = config(tiny_model, arithmetic_file, tmp_path)
    cpu = torch.device("cpu")
    assert cfg.gradient_checkpointing == "auto"
    assert choose(cfg, examples, 1, cpu, torch.float32) is False  # a 3M model fits any host
    assert choose(replace(cfg, gradient_checkpointing=True), examples, 1, cpu, torch.float32) is True
    tokens = 4 * max(e.n_tokens for e in examples)
    need = step_bytes(Shape.of(tiny_model), tokens, 4, checkpointing=False)
    monkeypatch.setattr(memory_plan, "free_bytes", lambda _device: int(need / memory_plan.HEADROOM) - 1)
    assert choose(cfg, examples, 1, cpu, torch.float32) is True
    assert choose(cfg, examples, 2, cpu, torch.float32) is False  # each of 2 ranks trains half the batch
    assert choose(replace(cfg, gradient_checkpointing=False), examples, 1, cpu, torch.float32) is False


def test_a_job_that_does_not_fit_trains_checkpointed_and_the_same(
    tiny_model, arithmetic_file, tmp_path, monkeypatch, caplog
) -> None:
    plain = train(config(tiny_model, arithmetic_file, tmp_path / "plain", gradient_checkpointing=False))
    monkeypatch.setattr(memory_plan, "free_bytes", lambda _device: 1 << 20)
    with caplog.at_level(logging.INFO, logger="worker.training.memory_plan"):
        auto = train(config(tiny_model, arithmetic_file, tmp_path / "auto"))
    assert "activation checkpointing on" in caplog.text
    ours = load_file(str(auto.adapter_dir / "adapter_model.safetensors"))
    ref = load_file(str(plain.adapter_dir / "adapter_model.safetensors"))
    for name in ref:
        torch.testing.assert_close(ours[name], ref[name], atol=1e-5, rtol=1e-4)
