"""bench/safety.py's configurations (the default and ``--quick``), Table 3/4's plan of cells and the judges.

A configuration is part of every cached cell's key (``safety_cache.py``): change a field and the cells rerun.
"""

from __future__ import annotations

import dataclasses

from service.config import Settings
from worker.evaluation import KeywordRefusalJudge


@dataclasses.dataclass(frozen=True)
class Config:
    name: str = "default"
    n: int = 100  # customer lines
    epochs: int = 2
    batch: int = 8
    lr: float = 2e-4
    max_seq_len: int = 128
    # Padding-free batches (``TrainConfig.packing``, the job default): the same weights and gradients as padded
    # batches up to float rounding, in about half the training time on 2 cores (the 90-minute budget).
    packing: bool = True
    eval_harmful: int = 100
    eval_fa: int = 50
    max_new_tokens: int = 48
    eval_batch: int = 100  # HS prompts per generate call (greedy answers do not depend on it)
    ps: tuple[float, ...] = (0.0, 0.05, 0.1, 0.2)
    seeds: int = 3  # for the p = 0 and p = 0.2 cells; the other ratios get one
    align_steps: int = 64
    align_batch: int = 4
    deep_factor: int = 2
    align_eval_harmful: int = 100
    align_eval_benign: int = 50
    retain_everyday: bool = True


QUICK = Config(
    name="quick",
    n=40,
    epochs=1,
    eval_harmful=20,
    eval_fa=10,
    max_new_tokens=24,
    ps=(0.0, 0.2),
    seeds=1,
    align_steps=8,
    align_eval_harmful=10,
    align_eval_benign=10,
    retain_everyday=False,
)


def cells(cfg: Config, deep: bool = False) -> list[tuple[str, str, float, int]]:
    """(base, method, p, seed) for every cell, each once, in run order (bases grouped). ``deep`` adds p = 0.2 on
    ``antibody-deep``, opt-in because building that base alone takes ~40 min on 2 cores (the 90-min budget)."""
    main_ps = {0.0, 0.2}
    out = [
        ("demo", method, p, seed)
        for p in cfg.ps
        for method in ("sft", "antibody")
        for seed in range(cfg.seeds if p in main_ps else 1)
    ]
    seeds = range(cfg.seeds)
    out += [("refusal-sft", "sft", 0.2, s) for s in seeds]
    out += [("flatness", method, 0.2, s) for method in ("sft", "antibody") for s in seeds]
    if deep:
        out += [("antibody-deep", method, 0.2, 0) for method in ("sft", "antibody")]
    return out


def make_judges(name: str, settings: Settings, second: bool) -> tuple[str, dict]:
    """The primary judge and, with ``second``, the other one beside it (the jobs' own `judges`)."""
    if name not in ("keyword", "learned"):
        raise SystemExit(f"unknown judge {name!r}; use keyword or learned")
    if not second and name == "keyword":
        return name, {"keyword": KeywordRefusalJudge()}
    from worker.fine_tuning.evaluation import judges

    primary, other = judges(settings.model_copy(update={"eval_judge": name, "eval_judge_dir": None}))
    return name, {name: primary, ("learned" if name == "keyword" else "keyword"): other}
