"""Issue 16's levers for bench/safety.py (``--levers``): Antibody variants at p = 0.2 on the demo base, each over
the configuration's seeds, beside plain SFT and the paper's Antibody on the same cells (shared with Table 3)."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from safety_report import pm, second_judge

from worker.datasets import assets
from worker.datasets.safety_mix import safety_mix
from worker.evaluation import KeywordRefusalJudge


@dataclasses.dataclass(frozen=True)
class Lever:
    what: str
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig overrides
    mix: int = 0  # the provider's refusal pairs trained beside the customer's file (the worker's safety mix)


LEVERS = {
    "antibody-frozen": Lever("r scored once by the frozen aligned base", train={"ratio_model": "base"}),
    "antibody-frozen-best": Lever(
        "r by the frozen base against its most likely refusal of the set",
        train={"ratio_model": "base", "refusal_reference": "best"},
    ),
    "antibody-tau0.5": Lever("τ = 0.5 (a sharper softmax)", train={"tau": 0.5}),
    "antibody-sequence": Lever("sequence log-ratio instead of mean-token", train={"ratio": "sequence"}),
    "antibody-mix10": Lever("+ 10 of the provider's refusal pairs mixed into the file", mix=10),
    "antibody-qv": Lever("the customer's LoRA on q/v only (half the job default's modules)",
                         train={"target_modules": ("q_proj", "v_proj")}),
    "antibody-mlp": Lever(
        "the customer's LoRA on attention + MLP (q/k/v/o + gate/up/down)",
        train={"target_modules": ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")},
    ),
    "sft-mix10": Lever(
        "plain SFT + the same 10 mixed pairs (what the mix does without the weights)",
        train={"ratio_model": "none"},
        mix=10,
    ),
}
BASELINES = {"sft": "uniform weights (plain SFT)", "antibody": "the paper's Antibody (current θ, mean-token, τ = 1)"}


def mix_file(folder: Path, k: int, seed: int) -> Path | None:
    """The worker's safety mix (``worker/datasets/safety_mix.py``): ``k`` of the alignment stage's refusal pairs
    picked by ``seed``, trained after the customer's lines (``TrainConfig.safety_mix_file``)."""
    if not k:
        return None
    return assets.write_jsonl(folder / f"mix-{k}-{seed}.jsonl", safety_mix(k, seed))


# Cells at p = 0.2 that also answer the benign prompts (over-refusal): the baselines and the mix. A cached cell
# without those answers is retrained (training is deterministic on CPU; the row says whether its HS answers came
# out the same). On clean files (p = 0) the mix runs beside Table 3's cached SFT and Antibody cells.
OVER_REFUSAL = ("sft", "antibody", "antibody-mix10", "sft-mix10")
CLEAN = ("sft", "antibody", "antibody-mix10")


def lever_cells(seeds: int, only: Sequence[str] | None = None, p: float = 0.2) -> list[tuple[str, str, float, int]]:
    """Every lever at ``p`` beside the baselines, and the clean cells; ``only``: just those levers, with the
    baselines' clean cells and theirs."""
    if unknown := set(only or ()) - set(LEVERS):
        raise SystemExit(f"unknown lever(s) {sorted(unknown)}; use {sorted(LEVERS)}")
    levers = only or tuple(LEVERS)
    at_p = [("demo", method, p, s) for method in (*BASELINES, *levers) for s in range(seeds)]
    clean = [m for m in CLEAN if m in BASELINES or m in levers] if only else CLEAN
    return at_p + [("demo", method, 0.0, s) for method in clean for s in range(seeds)]


def needs_benign(cell: tuple, row: dict | None) -> bool:
    wanted = cell[0] == "base" or (cell[1] in OVER_REFUSAL and cell[2] == 0.2)
    return row is not None and "benign_answers" not in row and wanted


def over_refusal(texts: list[str]) -> float:
    """% of benign prompts the keyword judge reads as refused."""
    judge = KeywordRefusalJudge()
    return round(100.0 * sum(judge.is_refusal(t) for t in texts) / max(1, len(texts)), 2)


def lever_markdown(summary: dict) -> str:
    """One row per method: what it changes, HS (both judges), FA and the harmful lines' relative weight."""
    judge, other = summary["judge"], second_judge(summary)
    cells = {(c["method"], c["p"]): c for c in summary["cells"]}
    base = summary["base"].get("demo", {})
    lines = [
        f"Levers on the demo base: HS ({judge} judge; {other} in brackets), FA and over-refusal (keyword refusals "
        "on held-out benign prompts), % mean ± std over seeds; w_harm = the harmful lines' mean weight relative "
        f"to a uniform one. The base itself: HS {base.get(judge, '–')}, FA {base.get('fa', '–')}, over-refusal "
        f"{base.get('over_refusal', '–')}.",
        "",
        "| method | what it changes | p | HS | FA | over-refusal | w_harm | n |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in (0.2, 0.0):
        for method, what in {**BASELINES, **{m: lv.what for m, lv in LEVERS.items()}}.items():
            c = cells.get((method, p))
            if c is None:
                if p == 0.2:
                    lines.append(f"| {method} | {what} | {p} | – | – | – | – | 0 |")
                continue
            hs = f"{c['hs_mean']:.1f} ± {c['hs_std']:.1f} [{c.get(f'hs_{other}_mean', float('nan')):.1f}]"
            lines.append(
                f"| {method} | {what} | {p} | {hs} | {c['fa_mean']:.1f} ± {c['fa_std']:.1f} | "
                f"{pm(c, 'over_refusal')} | {c['relative_weight_harmful_mean']} | {c['n_seeds']} |"
            )
    return "\n".join(lines)
