import csv
import json
from pathlib import Path

from click.testing import CliRunner
from peft import PeftModel

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
    result = CliRunner().invoke(
        train_command,
        ["--base", str(tiny_model), "--train", str(arithmetic_file), "--out", str(tmp_path), "--tau", "0"],
    )
    assert result.exit_code == 2 and "--tau" in result.output
    help_text = CliRunner().invoke(train_command, ["--help"]).output
    assert "--validation" in help_text and "--resume-from" in help_text
