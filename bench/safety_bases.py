"""bench/safety.py's aligned bases: one per spec (``BASE_SPECS``), built from the source model once and cached."""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from finetune_safety_smollm2 import log

from service.config import Settings
from worker.alignment.runner import AlignmentSpec, align_model

BASE_SPECS = {
    "demo": {"mode": "antibody"},
    "antibody-deep": {"mode": "antibody", "deep": True},
    "refusal-sft": {"mode": "sft"},
    "flatness": {"mode": "antibody", "lambda_refusal": 0.0},
}


def base_spec(name: str, cfg: Any, source: str) -> AlignmentSpec:  # cfg: safety.Config
    spec = dict(BASE_SPECS[name])
    deep = spec.pop("deep", False)
    return AlignmentSpec(
        name=f"bench-{name}",
        source=source,
        max_steps=cfg.align_steps * (cfg.deep_factor if deep else 1),
        batch_size=cfg.align_batch,
        eval_harmful=cfg.align_eval_harmful,
        eval_benign=cfg.align_eval_benign,
        retain_everyday=cfg.retain_everyday,
        **spec,
    )


def build_base(name: str, cfg: Any, source: str, bases_dir: Path, settings: Settings) -> tuple[Path, dict]:
    """The aligned base for ``name``, built once per (spec, source) and reused by later runs."""
    spec = base_spec(name, cfg, source)
    key = hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str).encode()).hexdigest()
    merged = bases_dir / f"{name}-{key[:12]}" / "merged"
    built_s = 0.0
    if not (merged / "alignment_manifest.json").exists():
        log(f"building base {name}: {spec.mode}, {spec.max_steps} steps of batch {spec.batch_size}")
        t0 = time.perf_counter()
        align_model(settings, spec, merged.parent)
        built_s = round(time.perf_counter() - t0, 1)
    manifest = json.loads((merged / "alignment_manifest.json").read_text())
    return merged, {
        "spec": manifest["spec"],
        "steps": manifest["steps"],
        "hs_keyword_before": manifest["before"]["hs"],
        "hs_keyword_after": manifest["after"]["hs"],
        "benign_refusal_rate_after": manifest["after"]["benign_refusal_rate"],
        "built_s_this_run": built_s,
    }


