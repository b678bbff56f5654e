"""Loading a base causal LM, wrapping it with LoRA, and the few transformers internals the passes rely on."""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import nn


def pick_device(device: str | None) -> torch.device:
    if device:
        return torch.device(device)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def pick_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """bf16 on CUDA, fp32 on CPU (CPU bf16 matmuls are slow and make resume tests meaningless)."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]


def load_base_model(path: Path, device: torch.device, dtype: torch.dtype) -> nn.Module:
    """A HF causal LM from a local directory: safetensors only, no remote code."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(
        path, dtype=dtype, use_safetensors=True, trust_remote_code=False, local_files_only=True
    )
    return model.to(device)


def add_lora(
    model: nn.Module,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
    gradient_checkpointing: bool = False,
) -> nn.Module:
    """Freeze the base and inject LoRA adapters (initialised from the current torch RNG state)."""
    from peft import LoraConfig, get_peft_model

    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    config = LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    return get_peft_model(model, config)


def continue_lora(model: nn.Module, adapter_dir: Path, gradient_checkpointing: bool = False) -> nn.Module:
    """Freeze the base and load a saved PEFT LoRA onto it as trainable. The adapter's own config (rank, alpha,
    dropout, target modules) applies: its weights only fit the shapes and modules they were trained with."""
    from peft import PeftModel

    if gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    return PeftModel.from_pretrained(model, adapter_dir, is_trainable=True)


def trainable_lora(
    base_model_dir: Path,
    device: torch.device,
    dtype: torch.dtype,
    *,
    rank: int,
    alpha: float,
    dropout: float,
    target_modules: Sequence[str],
    learning_rate: float,
    weight_decay: float,
    gradient_checkpointing: bool = False,
    init_adapter_dir: Path | None = None,
) -> tuple[nn.Module, list[nn.Parameter], torch.optim.Optimizer]:
    """The base model with a LoRA in train mode, its trainable parameters and an AdamW over them. The LoRA is
    fresh, or the one saved in ``init_adapter_dir`` (whose config then wins over ``rank``/``alpha``/…)."""
    model = load_base_model(Path(base_model_dir), device, dtype)
    if init_adapter_dir is not None:
        model = continue_lora(model, Path(init_adapter_dir), gradient_checkpointing)
    else:
        model = add_lora(model, rank, alpha, dropout, target_modules, gradient_checkpointing)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    fused = device.type == "cuda"  # one kernel for all LoRA tensors instead of a few per tensor
    return model, params, torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, fused=fused)


def lm_parts(model: nn.Module) -> tuple[nn.Module, nn.Module]:
    """(decoder, lm_head) of a (possibly PEFT-wrapped) causal LM: the transformer that returns final hidden
    states and the output projection. Splitting them lets us project only the rows we need onto the
    vocabulary."""
    lm = model.get_base_model() if hasattr(model, "get_base_model") else model
    decoder = getattr(lm, lm.base_model_prefix)
    head = lm.get_output_embeddings()
    if getattr(lm.config, "final_logit_softcapping", None):
        raise NotImplementedError("models with logit soft-capping are not supported")
    return decoder, head


def cache_kwarg(module: nn.Module) -> str:
    """The KV-cache argument of a decoder's or a (PEFT-wrapped) causal LM's forward: transformers 5 renamed
    `past_key_values` to `cache`."""
    lm = module.get_base_model() if hasattr(module, "get_base_model") else module
    params = inspect.signature(lm.forward).parameters
    return "cache" if "cache" in params else "past_key_values"


def cache_of(out: Any) -> Any:
    """The KV cache a forward returned (named like its argument)."""
    return out["cache"] if "cache" in out else out["past_key_values"]


def sdpa_without_cudnn(device: torch.device) -> AbstractContextManager:
    """On CUDA, SDPA's flash, memory-efficient and math kernels but not cuDNN's: cuDNN builds a graph for every new
    sequence length (on an H200, 8.5 s vs 1.45 s for a first batched 64-token decode, ``bench/decode_attention.py``),
    and decoding meets a new one every step, as padded or packed training batches do."""
    if device.type != "cuda":
        return nullcontext()
    from torch.nn.attention import SDPBackend, sdpa_kernel

    return sdpa_kernel([SDPBackend.FLASH_ATTENTION, SDPBackend.EFFICIENT_ATTENTION, SDPBackend.MATH])


def decoder_forward(
    decoder: nn.Module,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor,
    position_ids: torch.Tensor,
    cache: Any = None,
    use_cache: bool = False,
) -> tuple[torch.Tensor, Any]:
    """Final hidden states [B, T, H] and the KV cache (None unless ``use_cache``).

    A bf16 base runs under bf16 autocast: PEFT keeps the LoRA factors in fp32, and without autocast every
    adapted projection would copy its input to fp32 and multiply in fp32 (TRL's bf16 runs autocast the same)."""
    kwargs = {cache_kwarg(decoder): cache} if cache is not None else {}
    weight = decoder.get_input_embeddings().weight
    with torch.autocast(weight.device.type, dtype=weight.dtype, enabled=weight.dtype == torch.bfloat16):
        out = decoder(
            input_ids=input_ids,
            attention_mask=attention_mask,
            position_ids=position_ids,
            use_cache=use_cache,
            **kwargs,
        )
    if not use_cache:
        return out.last_hidden_state, None
    return out.last_hidden_state, cache_of(out)


def crop_cache(cache: Any, length: int) -> None:
    """Keep the first ``length`` positions of every layer of a dynamic KV cache, in place.

    Slicing makes views and rebinds the layer's tensors, so the tensors autograd saved for the training
    backward are never modified (torch would raise if they were).
    """
    layers = getattr(cache, "layers", None)
    if layers is None or any(getattr(layer, "is_sliding", False) for layer in layers):
        raise NotImplementedError(f"cannot crop a {type(cache).__name__}; use refusal_pass='naive'")
    for layer in layers:
        layer.keys = layer.keys[..., :length, :]
        layer.values = layer.values[..., :length, :]


def trainable_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA tensors by name (what checkpoints and bit-identity tests compare)."""
    return {n: p.detach() for n, p in model.named_parameters() if p.requires_grad}
