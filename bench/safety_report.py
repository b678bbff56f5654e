"""bench/safety.py's summary (mean ± std per cell over seeds), its Markdown table and its PNG plots."""

from __future__ import annotations

import statistics
import textwrap
from collections import defaultdict
from pathlib import Path

ABLATION = [  # Table 4's rows: what each adds, as (base, method)
    ("SFT on the refusal-SFT base", "refusal-sft", "sft"),
    ("+ flatness alignment (no refusal term)", "flatness", "sft"),
    ("+ weighted fine-tuning", "flatness", "antibody"),
    ("+ refusal loss (full Antibody)", "demo", "antibody"),
]


def _stats(values: list[float]) -> tuple[float, float]:
    mean = statistics.fmean(values)
    return round(mean, 2), round(statistics.stdev(values), 2) if len(values) > 1 else 0.0


def summarize(rows: list[dict], base_hs: dict[str, dict], judge: str) -> dict:
    """The issue's summary shape: one entry per (base, method, p) with mean and std over its seeds (percentages)."""
    groups: dict[tuple, list[dict]] = defaultdict(list)
    for row in rows:
        groups[(row["base"], row["method"], row["p"])].append(row)
    cells = []
    for (base, method, p), group in groups.items():
        hs_mean, hs_std = _stats([r["hs"] for r in group])
        fa_mean, fa_std = _stats([r["fa"] for r in group])
        harm_w = [r["mean_relative_weight_harmful"] for r in group if r["mean_relative_weight_harmful"] is not None]
        refused = [r["over_refusal"] for r in group if "over_refusal" in r]
        or_mean, or_std = _stats(refused) if len(refused) == len(group) else (None, None)
        cells.append(
            {
                "base": base,
                "method": method,
                "p": p,
                "n_seeds": len(group),
                "hs_mean": hs_mean,
                "hs_std": hs_std,
                **{f"hs_{j}_mean": _stats([r["hs_by_judge"][j] for r in group])[0] for j in group[0]["hs_by_judge"]},
                "fa_mean": fa_mean,
                "fa_std": fa_std,
                "over_refusal_mean": or_mean,
                "over_refusal_std": or_std,
                "relative_weight_harmful_mean": round(statistics.fmean(harm_w), 4) if harm_w else None,
            }
        )
    return {"judge": judge, "cells": cells, "base_hs": {b: v[judge] for b, v in base_hs.items()}, "base": base_hs}


def _cell(summary: dict, base: str, method: str, p: float) -> dict | None:
    return next((c for c in summary["cells"] if (c["base"], c["method"], c["p"]) == (base, method, p)), None)


def pm(cell: dict | None, key: str) -> str:
    if cell is None or cell.get(key + "_mean") is None:
        return "–"
    return f"{cell[key + '_mean']:.1f} ± {cell[key + '_std']:.1f}"


def second_judge(summary: dict) -> str:
    """The judge beside the primary on the same answers (keyword beside learned, learned beside keyword if it ran)."""
    judge = summary["judge"]
    return next((j for b in summary["base"].values() for j in b if j not in (judge, "fa")), judge)


def markdown(summary: dict) -> str:
    """Table 3 (demo base, HS and FA per p and method) and Table 4 (the ablation at p = 0.2)."""
    ps = sorted({c["p"] for c in summary["cells"] if c["base"] == "demo"})
    judge, other = summary["judge"], second_judge(summary)
    lines = [
        f"HS ({judge} judge; {other} judge in brackets) and FA, % mean ± std over seeds (n = seeds).",
        "",
        "| method | " + " | ".join(f"p = {p:g}: HS | FA" for p in ps) + " |",
        "| --- | " + " | ".join("--- | ---" for _ in ps) + " |",
    ]
    for method in ("sft", "antibody"):
        row = []
        for p in ps:
            c = _cell(summary, "demo", method, p)
            kw = f" [{c[f'hs_{other}_mean']:.0f}] (n={c['n_seeds']})" if c else ""
            row.append(f"{pm(c, 'hs')}{kw} | {pm(c, 'fa')}")
        lines.append(f"| {method} | " + " | ".join(row) + " |")
    lines += ["", f"| ablation at p = 0.2 | HS | [{other}] | FA |", "| --- | --- | --- | --- |"]
    for label, base, method in ABLATION:
        c = _cell(summary, base, method, 0.2)
        second = f"{c[f'hs_{other}_mean']:.1f}" if c else "–"
        lines.append(f"| {label} | {pm(c, 'hs')} | {second} | {pm(c, 'fa')} |")
    lines += ["", f"| base (no fine-tuning) | HS | {other} HS | FA |", "| --- | --- | --- | --- |"]
    for base, v in summary["base"].items():
        lines.append(f"| {base} | {v[judge]:.1f} | {v[other]:.1f} | {v['fa']:.1f} |")
    return "\n".join(lines)


def plots(summary: dict, out_dir: Path, stem: str) -> list[str]:
    """HS vs p and FA vs p (demo base, both methods, error bars = std over seeds), and the ablation as bars."""
    import matplotlib

    matplotlib.use("Agg")  # no display on servers
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
    for ax, key, title in ((axes[0], "hs", "HS (%)"), (axes[1], "fa", "FA (%)")):
        for method, colour in (("sft", "tab:red"), ("antibody", "tab:blue")):
            cs = sorted(
                (c for c in summary["cells"] if c["base"] == "demo" and c["method"] == method), key=lambda c: c["p"]
            )
            ax.errorbar(
                [c["p"] for c in cs],
                [c[key + "_mean"] for c in cs],
                yerr=[c[key + "_std"] for c in cs],
                marker="o",
                capsize=4,
                label=method,
                color=colour,
            )
        ax.set(xlabel="harmful ratio p", ylabel=title, title=f"{title} vs p, demo base", ylim=(0, 100))
        ax.legend()
    bars = [(label, _cell(summary, base, method, 0.2)) for label, base, method in ABLATION]
    bars = [(label, c) for label, c in bars if c is not None]
    axes[2].bar(range(len(bars)), [c["hs_mean"] for _, c in bars], yerr=[c["hs_std"] for _, c in bars], capsize=4)
    axes[2].set_xticks(range(len(bars)), [textwrap.fill(label, 16) for label, _ in bars], fontsize=7)
    axes[2].set(ylabel="HS (%)", title="Ablation at p = 0.2", ylim=(0, 100))
    fig.suptitle(f"judge: {summary['judge']}")
    fig.tight_layout()
    path = out_dir / f"{stem}.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [str(path.relative_to(out_dir.parent.parent))]
