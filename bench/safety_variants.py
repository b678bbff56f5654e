"""Which run bench/safety.py makes: Table 3 (the default) or one of issue 16's runs beside it, each with its own
cells, Markdown and results file (``safety-<config>-<variant>.json``)."""

from __future__ import annotations

import argparse

from safety_attacks import ATTACK_PS, attack_cells, attack_markdown
from safety_config import Config, cells
from safety_gate import gate_cells, gate_markdown
from safety_levers import lever_cells, lever_markdown
from safety_report import markdown, second_judge

VARIANTS = ("levers", "attacks", "gate")  # issue 16's runs beside Table 3; each has its own results file


def variant(args: argparse.Namespace) -> str | None:
    return next((v for v in VARIANTS if getattr(args, v, False)), None)


def variant_markdown(summary: dict, primary: str, args: argparse.Namespace, rows: list[dict]) -> str:
    if args.levers:
        return lever_markdown(summary)
    if args.gate:
        return gate_markdown(rows, summary["gate"])
    return attack_markdown(summary, primary, second_judge(summary)) if args.attacks else markdown(summary)


def plan_for(args: argparse.Namespace, cfg: Config) -> list[tuple]:
    if args.attacks:
        ps = tuple(getattr(args, "attack_p", None) or ATTACK_PS)
        return attack_cells(cfg.seeds, ps, getattr(args, "attack_base", None) or "demo")
    if args.levers:
        return lever_cells(cfg.seeds, getattr(args, "lever", None))
    return gate_cells(cfg.seeds) if args.gate else cells(cfg, getattr(args, "deep", False))


def stem(args: argparse.Namespace, cfg: Config) -> str:
    """``safety-<config>[-<variant>]``; an attack run on another base gets ``-<base>``, and at other ratios than the
    default ``-p<p>`` for each; a run of chosen levers (``--lever``) ``-<lever>`` for each."""
    ps, base = getattr(args, "attack_p", None), getattr(args, "attack_base", None)
    at = f"-{base}" if args.attacks and base and base != "demo" else ""
    at += "".join(f"-p{p:g}" for p in ps) if args.attacks and ps and tuple(ps) != ATTACK_PS else ""
    at += "".join(f"-{name}" for name in getattr(args, "lever", None) or ()) if args.levers else ""
    return f"safety-{cfg.name}" + (f"-{variant(args)}" if variant(args) else "") + at
