"""The model helpers every pass runs through: bf16 autocast for a bf16 base, and SDPA without cuDNN on CUDA."""

from __future__ import annotations

from pathlib import Path

import torch

import worker.training.fine_tuning_step as fine_tuning_step
from worker.training.data import collate, encode_file, load_tokenizer
from worker.training.model import add_lora, decoder_forward, lm_parts, load_base_model, sdpa_without_cudnn
from worker.training.refusals import DEFAULT_REFUSALS


def lora_input_dtypes(tiny_model: Path, dtype: torch.dtype) -> set[torch.dtype]:
    """The dtypes the LoRA ``A`` factors compute in during one decoder forward of a base loaded in ``dtype``."""
    model = add_lora(load_base_model(tiny_model, torch.device("cpu"), dtype), 4, 8, 0.0, ["q_proj", "v_proj"])
    seen: set[torch.dtype] = set()
    for name, module in model.named_modules():
        if name.endswith("lora_A.default"):
            module.register_forward_hook(lambda _m, _args, out: seen.add(out.dtype))
    decoder, _ = lm_parts(model)
    ids = torch.tensor([[1, 2, 3, 4]])
    decoder_forward(decoder, ids, torch.ones_like(ids), torch.arange(4)[None])
    return seen


def test_a_bf16_base_runs_its_fp32_lora_under_bf16_autocast(tiny_model: Path) -> None:
    # PEFT keeps LoRA factors in fp32; without autocast each adapted projection would run in fp32.
    assert lora_input_dtypes(tiny_model, torch.bfloat16) == {torch.bfloat16}
    assert lora_input_dtypes(tiny_model, torch.float32) == {torch.float32}


def test_sdpa_leaves_out_cudnn_on_cuda_only_and_restores_it() -> None:
    before = torch.backends.cuda.cudnn_sdp_enabled()
    with sdpa_without_cudnn(torch.device("cuda")):
        assert not torch.backends.cuda.cudnn_sdp_enabled()
        assert torch.backends.cuda.flash_sdp_enabled() and torch.backends.cuda.mem_efficient_sdp_enabled()
    assert torch.backends.cuda.cudnn_sdp_enabled() == before
    with sdpa_without_cudnn(torch.device("cpu")):
        assert torch.backends.cuda.cudnn_sdp_enabled() == before


def test_the_training_step_runs_inside_sdpa_without_cudnn(tiny_model: Path, arithmetic_file: Path, monkeypatch) -> None:
    # Training batches change width every step; cuDNN's attention would build a graph for each (bench/decode_attention).
    entered: list[torch.device] = []

    def spy(device: torch.device):
        entered.append(device)
        return sdpa_without_cudnn(device)

    monkeypatch.setattr(fine_tuning_step, "sdpa_without_cudnn", spy)
    model = add_lora(load_base_model(tiny_model, torch.device("cpu"), torch.float32), 4, 8, 0.0, ["q_proj"])
    examples = encode_file(arithmetic_file, load_tokenizer(tiny_model), 64, DEFAULT_REFUSALS)[:4]
    stats = fine_tuning_step.antibody_backward(model, [collate(examples, 0)], 1.0, "mean_token", "prefix_kv")
    assert entered == [torch.device("cpu")] and stats.weights.shape == (4,)
