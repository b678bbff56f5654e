"""Models for the evaluation tests: the shared tiny Llama, re-randomised so that its greedy outputs vary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch

from worker.training.data import load_tokenizer
from worker.training.model import load_base_model


@pytest.fixture(scope="session")
def tokenizer(tiny_model: Path) -> Any:
    return load_tokenizer(tiny_model)


@pytest.fixture(scope="session")
def varied_model(tiny_model: Path) -> torch.nn.Module:
    """The tiny Llama with its matrices redrawn at std 0.2 (seeded). At the default init std of 0.02 every
    greedy step predicts the same newline token, which would make batched-vs-single comparisons vacuous."""
    model = load_base_model(tiny_model, torch.device("cpu"), torch.float32).eval()
    gen = torch.Generator().manual_seed(1234)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.2)
    return model
