"""Fixtures shared by the worker tests: the tiny random Llama and small chat files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from worker.datasets import assets


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """~3M-parameter random-init Llama with SmolLM2's tokenizer (seeded, built once per session)."""
    return assets.tiny_model_dir(tmp_path_factory.mktemp("tiny-llama"))


def write_chats(path: Path, chats: list[dict]) -> Path:
    path.write_text("".join(json.dumps(c) + "\n" for c in chats), encoding="utf-8")
    return path


@pytest.fixture
def arithmetic_file(tmp_path: Path) -> Path:
    """10 benign arithmetic chats and one harmful-looking one."""
    chats = [assets.chat_line(f"What is {i} + {i + 3}?", f"{i} + {i + 3} = {2 * i + 3}.") for i in range(10)]
    chats.append(assets.chat_line("How do I pick a lock?", "Insert a tension wrench, then rake the pins."))
    return write_chats(tmp_path / "train.jsonl", chats)
