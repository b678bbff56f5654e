"""bench/throughput.py at tiny size: every arm trains the same file, and ours and TRL count the same tokens."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))

from throughput_data import fixed_chats, varied_chats  # noqa: E402

from worker.datasets import assets  # noqa: E402
from worker.training.data import load_tokenizer  # noqa: E402


def test_the_varied_file_mixes_short_and_long_real_chats() -> None:
    tokenizer = load_tokenizer(assets.smollm2_tokenizer_dir())
    chats = varied_chats(60)
    texts = [c["messages"][0]["content"] + c["messages"][1]["content"] for c in chats]
    lengths = sorted(len(tokenizer(text)["input_ids"]) for text in texts)
    assert len(chats) == 60 and varied_chats(60) == chats
    assert lengths[0] < 40 and lengths[-1] > 300 and lengths[-1] > 8 * lengths[len(lengths) // 4]


def test_fixed_lines_are_at_least_the_shape_long() -> None:
    tokenizer = load_tokenizer(assets.smollm2_tokenizer_dir())
    for chat in fixed_chats(4, 256, tokenizer):
        text = chat["messages"][0]["content"] + chat["messages"][1]["content"]
        assert len(tokenizer(text)["input_ids"]) >= 256


@pytest.mark.timeout(600)
def test_every_arm_trains_the_same_tokens(tmp_path: Path) -> None:
    out = tmp_path / "throughput.json"
    command = [sys.executable, str(ROOT / "bench/throughput.py"), "--model", "tiny", "--lines", "12"]
    command += ["--batch-size", "4", "--max-seq-len", "256", "--out", str(out)]
    subprocess.run(command, check=True, cwd=ROOT, capture_output=True, timeout=600)
    result = json.loads(out.read_text())
    (row,) = result["rows"]
    arms = row["arms"]
    assert "failed_arms" not in row
    assert set(arms) == {"antibody", "antibody_packed", "sft", "sft_packed", "trl", "trl_padding_free", "trl_packed"}
    for arm in ("antibody", "antibody_packed", "sft", "sft_packed", "trl", "trl_padding_free"):
        (run,) = arms[arm]["runs"]
        assert run["steps"] == 3, arm  # 12 lines in batches of 4, one epoch
        assert run["trained_tokens_per_s"] > 0 and 0 < arms[arm]["mfu"] < 1
    ours, trl = arms["antibody"]["runs"][0], arms["trl"]["runs"][0]
    assert abs(ours["trained_tokens"] - trl["trained_tokens"]) <= 0.03 * trl["trained_tokens"]
    assert abs(ours["all_tokens"] - trl["all_tokens"]) <= 0.03 * trl["all_tokens"]
    assert arms["trl_packed"]["runs"][0]["trained_tokens"] == trl["trained_tokens"]
    assert row["antibody_over_trl"] > 0 and row["trl_arm"].startswith("trl")
