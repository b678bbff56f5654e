import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from peft import PeftModel

import worker.training.cli as cli
from worker.datasets import assets
from worker.training.cli import train_command
from worker.training.trainer import load_adapter_model


def test_train_command_runs_the_library(tiny_model: Path, arithmetic_file: Path, tmp_path: Path) -> None:
    refusals = tmp_path / "refusals.txt"
    refusals.write_text("No.\n\nI will not do that.\n")
    out = tmp_path / "out"
    result = CliRunner().invoke(
        train_command,
        [
            "--base",
            str(tiny_model),
            "--train",
            str(arithmetic_file),
            "--validation",
            str(arithmetic_file),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "4",
            "--micro-batch-size",
            "2",
            "--lora-rank",
            "4",
            "--target-modules",
            "q_proj, v_proj",
            "--max-seq-len",
            "64",
            "--refusals-file",
            str(refusals),
            "--checkpoint-every",
            "2",
            "--seed",
            "1",
            "--gradient-checkpointing",
            "on",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f"adapter: {out / 'adapter'}" in result.output
    assert "steps: 3" in result.output
    rows = list(csv.DictReader(open(out / "metrics.csv")))
    assert [r["step"] for r in rows] == ["1", "2", "3"] and rows[-1]["valid_loss"]
    assert len(json.loads((out / "attenuation.json").read_text())) == 11
    config = json.loads((out / "adapter" / "adapter_config.json").read_text())
    assert sorted(config["target_modules"]) == ["q_proj", "v_proj"] and config["r"] == 4
    assert isinstance(load_adapter_model(tiny_model, out / "adapter"), PeftModel)


def test_train_command_validates_options(tiny_model: Path, arithmetic_file: Path, tmp_path: Path) -> None:
    required = ["--base", str(tiny_model), "--train", str(arithmetic_file), "--out", str(tmp_path)]
    result = CliRunner().invoke(train_command, [*required, "--tau", "0"])
    assert result.exit_code == 2 and "--tau" in result.output
    result = CliRunner().invoke(train_command, [*required, "--gradient-checkpointing", "yes"])
    assert result.exit_code == 2 and "'auto', 'on', 'off'" in result.output
    help_text = CliRunner().invoke(train_command, ["--help"]).output
    assert "--validation" in help_text and "--resume-from" in help_text


def test_train_command_packs_unless_told_not_to(tiny_model: Path, arithmetic_file: Path, tmp_path: Path, monkeypatch):
    seen: list[bool] = []

    def record(cfg, on_step=None):
        seen.append(cfg.packing)
        raise SystemExit(0)

    monkeypatch.setattr(cli, "train", record)
    required = ["--base", str(tiny_model), "--train", str(arithmetic_file), "--out", str(tmp_path)]
    CliRunner().invoke(train_command, required)
    CliRunner().invoke(train_command, [*required, "--no-packing"])
    assert seen == [True, False]


@pytest.mark.slow
def test_ftaas_train_on_smollm2_with_a_50_line_file(tmp_path: Path) -> None:
    """Issue 3, item 5: the CLI on the real model finishes on CPU with a loadable adapter and an attenuation
    report covering every line."""
    benign = assets.reasoning_gym_samples("basic_arithmetic", n=40, seed=5, max_digits=2, max_terms=3)
    harmful = assets.pyrit_harmful_pairs()[1::11][:10]
    chats = [assets.chat_line(s["prompt"], s["response"]) for s in benign]
    chats += [assets.chat_line(p["prompt"], p["response"]) for p in harmful]
    data = assets.write_jsonl(tmp_path / "train.jsonl", chats)
    base = assets.smollm2_dir()
    out = tmp_path / "out"
    result = CliRunner().invoke(
        train_command,
        [
            "--base",
            str(base),
            "--train",
            str(data),
            "--out",
            str(out),
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--max-seq-len",
            "96",
            "--lora-rank",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "attenuation.json").read_text())
    assert sorted(row["line"] for row in report) == list(range(1, 51))
    model = load_adapter_model(base, out / "adapter")
    assert isinstance(model, PeftModel)
    mean_w = [row["mean_weight"] for row in report]
    print({"benign_mean_weight": sum(mean_w[:40]) / 40, "harmful_mean_weight": sum(mean_w[40:]) / 10})
