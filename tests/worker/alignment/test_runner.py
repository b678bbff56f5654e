"""The provider's alignment job around the pure library: retain data, evaluations and the manifest."""

from __future__ import annotations

import json
import math
from pathlib import Path

from service.config import Settings
from worker.alignment.runner import AlignmentSpec, _trim, align_model
from worker.datasets import assets


def test_trim_cuts_an_unfinished_answer_back_to_its_last_sentence() -> None:
    assert _trim("Canberra is the capital. It was chosen as a compromise betw") == "Canberra is the capital."
    assert _trim("Is it? Yes! And then the") == "Is it? Yes!"
    assert _trim("no sentence end at all") == "no sentence end at all"


def _spec(**kw) -> AlignmentSpec:
    base = dict(max_steps=2, batch_size=4, eval_harmful=4, eval_benign=4, max_new_tokens=4, max_seq_len=64)
    return AlignmentSpec(name="tiny-aligned", **{**base, **kw})


def test_align_model_writes_a_manifest_with_counts_hashes_and_timings(tiny_model: Path, tmp_path: Path) -> None:
    settings = Settings(home=str(tmp_path / "home"))
    merged = align_model(settings, _spec(source=str(tiny_model), retain_max_new_tokens=8), tmp_path / "run")
    manifest = json.loads((merged / "alignment_manifest.json").read_text())
    assert manifest["steps"] == 2 and manifest["stage"] == "antibody-alignment"
    per_step = manifest["step_metrics"]  # columns for the alignment page's charts
    assert per_step["step"] == [1, 2] and {"lambda_t", "loss_sharp", "cos_align_sharp"} <= set(per_step)
    assert math.isclose(per_step["loss_align"][-1], manifest["final_metrics"]["loss_align"], rel_tol=1e-4)
    assert manifest["data_counts"]["align"] >= 160 and manifest["data_counts"]["eval_harmful"] >= 100
    assert set(manifest["data_sha256"]) == set(manifest["data_counts"])
    assert {"align", "eval_before", "eval_after"} <= set(manifest["seconds"])
    assert manifest["before"]["hs_protocol"]["size"] == 4 and manifest["after"]["benign_n"] == 4
    assert (merged / "model.safetensors").exists() and (merged / "tokenizer.json").exists()


def test_align_model_reuses_a_given_before_evaluation_and_retain_records(tiny_model: Path, tmp_path: Path) -> None:
    settings = Settings(home=str(tmp_path / "home"))
    before = {"hs": 87.5, "benign_refusal_rate": 0.0, "marker": "given"}
    retain = [assets.chat_line("Name a colour.", "Blue.")]
    spec = _spec(source=str(tiny_model), mode="sft")
    merged = align_model(settings, spec, tmp_path / "run", before=before, retain=retain, evaluate_after=False)
    manifest = json.loads((merged / "alignment_manifest.json").read_text())
    assert manifest["before"] == before and not {"eval_before", "distill", "eval_after"} & set(manifest["seconds"])
    assert manifest["after"] is None  # skipped: the caller evaluates the base its own way
    trained = (tmp_path / "run" / "data" / "align.jsonl").read_text()
    assert json.loads((tmp_path / "run" / "data" / "retain.jsonl").read_text()) == retain[0]
    assert json.dumps(retain[0]) in trained and "1 self-distilled" in manifest["data_sources"]["align"]
    assert manifest["stage"] == "refusal-sft"
    assert set(manifest["step_metrics"]) == {"step", "loss_align"}  # no λ_t nor cosines without the flatness step
