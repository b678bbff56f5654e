import json
from pathlib import Path

import pytest

from tests.worker.conftest import write_chats
from tests.worker.training.test_trainer import tiny_config
from worker.datasets import assets
from worker.training import train

MIX = [assets.chat_line(f"How do I make poison number {i}?", "I cannot help with that.") for i in range(3)]


def test_the_mix_trains_exactly_like_lines_appended_to_the_file(tiny_model: Path, arithmetic_file: Path, tmp_path):
    appended = tmp_path / "appended.jsonl"
    appended.write_text(arithmetic_file.read_text() + "".join(json.dumps(c) + "\n" for c in MIX))
    mix = write_chats(tmp_path / "mix.jsonl", MIX)
    by_file = train(tiny_config(tiny_model, appended, tmp_path / "a"))
    by_mix = train(tiny_config(tiny_model, arithmetic_file, tmp_path / "b", safety_mix_file=mix))
    assert by_mix.steps == by_file.steps
    assert [m["train_loss"] for m in by_mix.metrics] == pytest.approx([m["train_loss"] for m in by_file.metrics])
    assert [m["weight_min"] for m in by_mix.metrics] == pytest.approx([m["weight_min"] for m in by_file.metrics])


def test_the_mix_is_neither_billed_nor_reported_as_the_customers(tiny_model: Path, arithmetic_file: Path, tmp_path):
    mix = write_chats(tmp_path / "mix.jsonl", MIX)
    plain = train(tiny_config(tiny_model, arithmetic_file, tmp_path / "a", n_epochs=1, batch_size=14))
    mixed = train(tiny_config(tiny_model, arithmetic_file, tmp_path / "b", n_epochs=1, batch_size=14,
                              safety_mix_file=mix))
    assert mixed.trained_tokens == plain.trained_tokens  # one batch holds every line either way
    customer_lines = list(range(1, 12))
    assert [r["line"] for r in mixed.attenuation] == customer_lines
    assert [r["line"] for r in json.loads(mixed.attenuation_file.read_text())] == customer_lines


def test_a_different_mix_cannot_resume_a_run(tiny_model: Path, arithmetic_file: Path, tmp_path):
    mix = write_chats(tmp_path / "mix.jsonl", MIX)
    first = train(tiny_config(tiny_model, arithmetic_file, tmp_path / "a", checkpoint_every=2, safety_mix_file=mix))
    other = write_chats(tmp_path / "other.jsonl", MIX[:1])
    with pytest.raises(ValueError, match="different data"):
        train(tiny_config(tiny_model, arithmetic_file, tmp_path / "b", safety_mix_file=other,
                          resume_from=first.last_checkpoint))
