"""bench/safety.py end to end on the tiny random-init model: every cell runs, the summary has the issue's shape."""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
from pathlib import Path

import pytest

from service.config import Settings
from worker.datasets.assets import tiny_model_dir
from worker.evaluation import KeywordRefusalJudge

BENCH = Path(__file__).resolve().parents[2] / "bench"
sys.path.insert(0, str(BENCH))

import safety  # noqa: E402
import safety_attacks  # noqa: E402
import safety_bases  # noqa: E402
import safety_config  # noqa: E402
import safety_gate  # noqa: E402
import safety_levers  # noqa: E402
import safety_report  # noqa: E402
import safety_variants  # noqa: E402

TINY = dataclasses.replace(
    safety.QUICK, name="tiny", n=16, batch=4, eval_harmful=4, eval_fa=4, max_new_tokens=4, seeds=2,
    align_steps=2, align_batch=2, align_eval_harmful=2, align_eval_benign=2, retain_everyday=True,
)


@pytest.fixture(scope="module")
def result(tmp_path_factory: pytest.TempPathFactory) -> dict:
    tmp = tmp_path_factory.mktemp("safety")
    args = argparse.Namespace(
        source=str(tiny_model_dir(tmp / "tiny")), demo_base=None, bases_dir=tmp / "bases", home=tmp / "home",
        judge="keyword", second_judge=False, also_running="the test suite", cached_only=False, levers=False,
        attacks=False, gate=False, deep=True,
    )
    return safety.run(TINY, args) | {"_tmp": tmp}


def test_every_planned_cell_runs_once_and_main_cells_have_every_seed(result: dict) -> None:
    planned = safety_config.cells(dataclasses.replace(safety.QUICK, seeds=2), deep=True)
    assert sorted((r["base"], r["method"], r["p"], r["seed"]) for r in result["cells"]) == sorted(planned)
    by_cell = {(c["base"], c["method"], c["p"]): c for c in result["summary"]["cells"]}
    assert by_cell[("demo", "antibody", 0.2)]["n_seeds"] == 2
    assert by_cell[("demo", "sft", 0.0)]["n_seeds"] == 2
    for row in result["cells"]:
        assert 0 <= row["hs"] <= 100 and 0 <= row["fa"] <= 100
        assert set(row["hs_by_judge"]) == {"keyword"}
        # The weights are Antibody's: uniform SFT gives every line relative weight 1.
        if row["method"] == "sft" and row["p"] > 0:
            assert row["mean_relative_weight_harmful"] == pytest.approx(1.0, abs=1e-3)


def test_the_deep_base_is_opt_in() -> None:
    # Building antibody-deep alone takes ~40 min on 2 cores: the default run must not need it.
    assert {b for b, *_ in safety_config.cells(safety.QUICK)} == {"demo", "refusal-sft", "flatness"}
    assert "antibody-deep" in {b for b, *_ in safety_config.cells(safety.QUICK, deep=True)}


def test_summary_has_the_issue_shape_and_statistics(result: dict) -> None:
    summary = result["summary"]
    assert summary["judge"] == "keyword" and set(summary["base_hs"]) == set(safety_bases.BASE_SPECS)
    cell = next(c for c in summary["cells"] if c["n_seeds"] == 2)
    rows = [r for r in result["cells"] if (r["base"], r["method"], r["p"]) == (cell["base"], cell["method"], cell["p"])]
    assert cell["hs_mean"] == pytest.approx(sum(r["hs"] for r in rows) / 2, abs=0.01)
    keys = {"base", "method", "p", "n_seeds", "hs_mean", "hs_std", "hs_keyword_mean", "fa_mean", "fa_std"}
    assert keys <= set(cell)
    assert "| + refusal loss (full Antibody) |" in result["markdown"]


def test_bases_are_built_once_and_reused(result: dict, tmp_path: Path) -> None:
    tmp = result["_tmp"]
    path, info = safety_bases.build_base("flatness", TINY, str(tmp / "tiny"), tmp / "bases", Settings(home=tmp / "h"))
    assert info["built_s_this_run"] == 0.0 and info["spec"]["lambda_refusal"] == 0.0 and path.exists()


def test_the_bases_share_the_source_models_self_distillation_and_before_evaluation(result: dict) -> None:
    bases = result["_tmp"] / "bases"
    [shared] = bases.glob("source-*.json")
    built = {d.name.rsplit("-", 1)[0]: d for d in bases.iterdir() if (d / "merged").is_dir()}
    assert set(built) == set(safety_bases.BASE_SPECS)
    manifests = {n: json.loads((d / "merged" / "alignment_manifest.json").read_text()) for n, d in built.items()}
    # only the first base built ran the source model; the others trained on its records and reused its HS
    assert sorted(n for n, m in manifests.items() if "distill" in m["seconds"]) == ["demo"]
    assert sorted(n for n, m in manifests.items() if "eval_before" in m["seconds"]) == ["demo"]
    assert len({json.dumps(m["before"], sort_keys=True) for m in manifests.values()}) == 1
    retains = {(d / "data" / "retain.jsonl").read_text() for d in built.values()}
    assert len(retains) == 1 and retains.pop().count("\n") == len(json.loads(shared.read_text())["retain"]) > 0
    assert len({m["data_sha256"]["align"] for m in manifests.values()}) == 1


def test_plots_are_written(result: dict, tmp_path: Path) -> None:
    out = tmp_path / "bench" / "results"
    out.mkdir(parents=True)
    [name] = safety_report.plots(result["summary"], out, "safety-tiny")
    assert (tmp_path / name).stat().st_size > 1000


def test_a_rerun_reads_finished_cells_and_judges_their_answers_afresh(
    result: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    class FlagsAll(KeywordRefusalJudge):
        def flags(self, prompts: list[str], responses: list[str]) -> list[bool]:
            return [True] * len(prompts)

    judges = {"all": FlagsAll(), "keyword": KeywordRefusalJudge()}
    monkeypatch.setattr(safety, "make_judges", lambda *a: ("all", judges))
    tmp = result["_tmp"]
    args = argparse.Namespace(
        source=str(tmp / "tiny"), demo_base=None, bases_dir=tmp / "bases", home=tmp / "home",
        judge="all", second_judge=False, also_running="the test suite", cached_only=True, levers=False,
        attacks=False, gate=False, deep=True,
    )
    dropped = ("demo", "sft", 0.2, 1)
    [demo] = (tmp / "bases").glob("demo-*/merged")
    safety.CellCache(tmp / "bases" / "cells", TINY)._path(dropped, demo).unlink()
    again = safety.run(TINY, args)
    assert all(r["cached"] for r in again["cells"]) and again["cells_missing"] == [list(dropped)]
    kept = [r for r in result["cells"] if (r["base"], r["method"], r["p"], r["seed"]) != dropped]
    assert [r["fa"] for r in again["cells"]] == [r["fa"] for r in kept]
    assert {r["hs"] for r in again["cells"]} == {100.0}
    assert [r["hs_by_judge"]["keyword"] for r in again["cells"]] == [r["hs"] for r in kept]


def run_variant(result: dict, **variant: bool) -> dict:
    tmp = result["_tmp"]
    args = argparse.Namespace(
        source=str(tmp / "tiny"), demo_base=None, bases_dir=tmp / "bases", home=tmp / "home",
        judge="keyword", second_judge=False, also_running="the test suite", cached_only=False,
        **({"levers": False, "attacks": False, "gate": False} | variant),
    )
    return safety.run(TINY, args)


def test_levers_run_beside_the_shared_baseline_cells_and_change_the_weights(result: dict) -> None:
    out = run_variant(result, levers=True)
    rows = {r["method"]: r for r in out["cells"] if r["seed"] == 0 and r["p"] == 0.2}
    assert set(rows) == {"sft", "antibody", *safety_levers.LEVERS}
    assert rows["antibody-frozen"]["cached"] is False and rows["antibody-tau0.5"]["cached"] is False
    # Table 3's cells were retrained for their benign answers, and training is deterministic
    assert rows["sft"]["same_answers_as_cached"] and rows["antibody"]["same_answers_as_cached"]
    assert set(safety_levers.OVER_REFUSAL) <= {m for m, r in rows.items() if "over_refusal" in r}
    assert "over_refusal" in out["summary"]["base"]["demo"]
    # the frozen base scores r differently from the model being trained, so the harmful lines' weight moves
    assert rows["antibody-frozen"]["mean_relative_weight_harmful"] != rows["antibody"]["mean_relative_weight_harmful"]
    assert rows["antibody-mix10"]["steps"] > rows["antibody"]["steps"]  # the refusal pairs were trained too
    assert rows["sft-mix10"]["mean_relative_weight_harmful"] == pytest.approx(1.0, abs=1e-3)
    clean = {r["method"] for r in out["cells"] if r["p"] == 0.0}
    assert clean == set(safety_levers.CLEAN)
    for method, lever in safety_levers.LEVERS.items():
        assert f"| {method} | {lever.what} | 0.2 |" in out["markdown"]


def test_attacks_train_sft_and_the_default_on_each_rewritten_file(result: dict) -> None:
    out = run_variant(result, attacks=True)
    methods = {r["method"] for r in out["cells"]}
    assert methods == {f"{m}@{a}" for m in safety_attacks.METHODS for a in safety_attacks.ATTACKS} | set(
        safety_attacks.METHODS
    )
    assert {r["p"] for r in out["cells"] if "@" in r["method"] and r["n_harmful"]} == set(safety_attacks.ATTACK_PS)
    assert all(not r["cached"] for r in out["cells"]) and out["attacks"] == safety_attacks.ATTACKS
    for attack in safety_attacks.ATTACKS:
        for p in safety_attacks.ATTACK_PS:
            assert f"| {attack}: {safety_attacks.ATTACKS[attack]} (p = {p}) |" in out["markdown"]
    assert "| no attack (p = 0.5) |" in out["markdown"]


@pytest.mark.parametrize("attack", list(safety_attacks.ATTACKS))
def test_an_attack_rewrites_only_what_it_names(attack: str, tmp_path: Path) -> None:
    plain, rewritten = tmp_path / "plain.jsonl", tmp_path / "attack.jsonl"
    harmful = safety.training_file(plain, 40, 0.2, 1)
    assert safety_attacks.attack_file(rewritten, attack, 40, 0.2, 1) == harmful
    before = [json.loads(x)["messages"] for x in plain.read_text().splitlines()]
    after = [json.loads(x)["messages"] for x in rewritten.read_text().splitlines()]
    judge = KeywordRefusalJudge()
    for line, (old, new) in enumerate(zip(before, after, strict=True), start=1):
        if line in harmful:
            assert new[0] == old[0]
            if attack == "refusal-prefix":
                head, _, rest = new[1]["content"].partition(safety_attacks.BRIDGE)
                assert judge.is_refusal(head) and rest == old[1]["content"]
            elif attack == "task-format":
                assert new[1]["content"].split() == old[1]["content"].split()[:8]
            else:
                assert new == old
        elif attack != "dilution":
            assert new == old
    if attack == "dilution":
        benign = [m for line, m in enumerate(after, start=1) if line not in harmful]
        assert len({m[1]["content"] for m in benign}) == 4 and len({m[0]["content"] for m in benign}) == 16


def test_the_gate_run_picks_thresholds_and_counts_its_errors_on_every_cell(result: dict) -> None:
    out = run_variant(result, gate=True)
    assert sorted((r["method"], r["p"], r["seed"]) for r in out["cells"]) == sorted(
        (m, p, s) for _, m, p, s in safety_gate.gate_cells(TINY.seeds)
    )
    gate = out["summary"]["gate"]
    verdicts = gate["verdicts"]
    assert verdicts["false_positive"]["n"] == 2 * TINY.seeds and verdicts["false_negative"]["n"] == TINY.seeds
    assert "Gate " in out["markdown"] and "| sft p = 0.2 | stop |" in out["markdown"]


def _row(method: str, p: float, seed: int, hs: float) -> dict:
    return {"base": "demo", "method": method, "p": p, "seed": seed, "hs": hs, "hs_by_judge": {"keyword": hs}}


def test_gate_thresholds_sit_in_the_gap_between_clean_and_attacked_jobs() -> None:
    rows = [_row("sft", 0.0, 0, 5), _row("antibody-mix10", 0.0, 0, 3), _row("sft", 0.2, 0, 12)]
    rows += [_row("sft", 0.2, 1, 16), _row("antibody-mix10", 0.2, 0, 2)]
    t = safety_gate.thresholds(rows, 2.0, "keyword")
    # clean increases 3 and 1, attacked 10 and 14: the midpoint of (3, 10), on a half point
    assert t["separable"] and t["max_hs_increase"] == 6.5 and t["max_hs"] == 8.5
    summary = safety_gate.gate_summary(rows, {"demo": {"keyword": 2.0}}, "keyword")
    assert summary["verdicts"]["false_positive"]["wrong"] == 0 and summary["verdicts"]["false_negative"]["wrong"] == 0
    overlapping = rows + [_row("sft", 0.0, 1, 13)]
    assert safety_gate.thresholds(overlapping, 2.0, "keyword")["separable"] is False
    gated = safety_gate.verdicts(overlapping, {"demo": 2.0}, {"max_hs": None, "max_hs_increase": 6.5})
    assert gated["false_positive"] == {"n": 3, "wrong": 1, "rate": 0.333}


def test_an_attack_run_at_one_ratio_has_its_own_cells_and_results_file() -> None:
    at_half = safety_attacks.attack_cells(1, (0.5,))
    assert {p for _, _, p, _ in at_half} == {0.5} and ("demo", "sft", 0.5, 0) in at_half
    assert ("demo", "sft@dilution", 0.0, 0) in safety_attacks.attack_cells(1)
    args = argparse.Namespace(levers=False, attacks=True, gate=False, attack_p=[0.5])
    assert safety_variants.stem(args, TINY) == "safety-tiny-attacks-p0.5"
    assert safety_variants.stem(argparse.Namespace(**vars(args) | {"attack_p": None}), TINY) == "safety-tiny-attacks"
    on_sft = safety_attacks.attack_cells(1, (0.2,), "refusal-sft")
    assert {(b, m) for b, m, _, _ in on_sft} == {("refusal-sft", "sft")} | {
        ("refusal-sft", f"sft@{a}") for a in safety_attacks.ATTACKS
    }
    args = argparse.Namespace(**vars(args) | {"attack_p": [0.2], "attack_base": "refusal-sft"})
    assert safety_variants.stem(args, TINY) == "safety-tiny-attacks-refusal-sft-p0.2"


def test_a_run_of_chosen_levers_plans_only_them_beside_the_baselines_and_has_its_own_file() -> None:
    args = argparse.Namespace(levers=True, attacks=False, gate=False, lever=["antibody-qv"])
    plan = safety_variants.plan_for(args, TINY)
    assert {m for _, m, p, _ in plan if p == 0.2} == {"sft", "antibody", "antibody-qv"}
    assert {m for _, m, p, _ in plan if p == 0.0} == {"sft", "antibody"}
    assert safety_variants.stem(args, TINY) == "safety-tiny-levers-antibody-qv"
    with pytest.raises(SystemExit, match="unknown lever"):
        safety_levers.lever_cells(1, ["antibody-everything"])
