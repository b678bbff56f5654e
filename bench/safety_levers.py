"""Issue 16's levers for bench/safety.py (``--levers``): Antibody variants at p = 0.2 on the demo base, each over
the configuration's seeds, beside plain SFT and the paper's Antibody on the same cells (shared with Table 3)."""

from __future__ import annotations

import dataclasses
import json
import random
from pathlib import Path
from typing import Any

from safety_report import second_judge

from worker.datasets.splits import builtin_splits


@dataclasses.dataclass(frozen=True)
class Lever:
    what: str
    tau: float = 1.0
    train: dict[str, Any] = dataclasses.field(default_factory=dict)  # TrainConfig overrides
    mix: int = 0  # the provider's refusal pairs (alignment split) appended to the customer's file


LEVERS = {
    "antibody-frozen": Lever("r scored once by the frozen aligned base", train={"ratio_model": "base"}),
    "antibody-frozen-best": Lever(
        "r by the frozen base against its most likely refusal of the set",
        train={"ratio_model": "base", "refusal_reference": "best"},
    ),
    "antibody-tau0.5": Lever("τ = 0.5 (a sharper softmax)", tau=0.5),
    "antibody-sequence": Lever("sequence log-ratio instead of mean-token", train={"ratio": "sequence"}),
    "antibody-mix10": Lever("+ 10 of the provider's refusal pairs mixed into the file", mix=10),
}
BASELINES = {"sft": "uniform weights (plain SFT)", "antibody": "the paper's Antibody (current θ, mean-token, τ = 1)"}


def mix_refusals(path: Path, k: int, seed: int) -> None:
    """Append ``k`` (harmful prompt, refusal) pairs from the alignment stage's refusal data (the bases'
    ``builtin_splits(seed=0)``, disjoint from the attack split and the HS prompts), picked by ``seed``. They go
    after the customer's lines, so the harmful lines keep their numbers."""
    pairs = random.Random(seed).sample(builtin_splits(seed=0).refusal, k)
    with open(path, "a", encoding="utf-8") as fh:
        fh.writelines(json.dumps(p) + "\n" for p in pairs)


def lever_cells(seeds: int, p: float = 0.2) -> list[tuple[str, str, float, int]]:
    return [("demo", method, p, s) for method in (*BASELINES, *LEVERS) for s in range(seeds)]


def lever_markdown(summary: dict) -> str:
    """One row per method: what it changes, HS (both judges), FA and the harmful lines' relative weight."""
    judge, other = summary["judge"], second_judge(summary)
    cells = {c["method"]: c for c in summary["cells"]}
    lines = [
        f"Levers at p = 0.2 on the demo base: HS ({judge} judge; {other} in brackets) and FA, % mean ± std over "
        "seeds; w_harm = the harmful lines' mean weight relative to a uniform one.",
        "",
        "| method | what it changes | HS | FA | w_harm | n |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for method, what in {**BASELINES, **{m: lv.what for m, lv in LEVERS.items()}}.items():
        c = cells.get(method)
        if c is None:
            lines.append(f"| {method} | {what} | – | – | – | 0 |")
            continue
        hs = f"{c['hs_mean']:.1f} ± {c['hs_std']:.1f} [{c.get(f'hs_{other}_mean', float('nan')):.1f}]"
        lines.append(f"| {method} | {what} | {hs} | {c['fa_mean']:.1f} ± {c['fa_std']:.1f} | "
                     f"{c['relative_weight_harmful_mean']} | {c['n_seeds']} |")
    return "\n".join(lines)
