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
from worker.datasets import assets

# The spec fields a base's mode sets; the rest (source, data, evaluation) is shared by every base.
MODE_FIELDS = ("name", "mode", "lambda_refusal", "max_steps")
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


def _key(fields: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:12]


def _source_inputs(spec: AlignmentSpec, bases_dir: Path) -> Path:
    """Where the source model's self-distilled retain records and its ``before`` evaluation are kept. Neither
    depends on the mode, λ or the step budget, so the bases share them (190 s of SmolLM2's demo base on 2 cores)."""
    fields = dataclasses.asdict(spec)
    for mode_only in MODE_FIELDS:
        fields.pop(mode_only)
    return bases_dir / f"source-{_key(fields)}.json"


def build_base(name: str, cfg: Any, source: str, bases_dir: Path, settings: Settings) -> tuple[Path, dict]:
    """The aligned base for ``name``, built once per (spec, source) and reused by later runs."""
    spec = base_spec(name, cfg, source)
    merged = bases_dir / f"{name}-{_key(dataclasses.asdict(spec))}" / "merged"
    built_s = 0.0
    if not (merged / "alignment_manifest.json").exists():
        log(f"building base {name}: {spec.mode}, {spec.max_steps} steps of batch {spec.batch_size}")
        shared = _source_inputs(spec, bases_dir)
        inputs = json.loads(shared.read_text()) if shared.exists() else {}
        t0 = time.perf_counter()
        # base_rows evaluates every base under the bench's own protocol, so the alignment's own after-evaluation
        # (~55 s a base on 2 cores) would be done twice.
        before, retain = inputs.get("before"), inputs.get("retain")
        align_model(settings, spec, merged.parent, before=before, retain=retain, evaluate_after=False)
        built_s = round(time.perf_counter() - t0, 1)
        if not inputs:
            retain = assets.read_jsonl(merged.parent / "data" / "retain.jsonl")
            before = json.loads((merged / "alignment_manifest.json").read_text())["before"]
            shared.write_text(json.dumps({"before": before, "retain": retain}))
    manifest = json.loads((merged / "alignment_manifest.json").read_text())
    return merged, {
        "spec": manifest["spec"],
        "steps": manifest["steps"],
        "hs_keyword_before": manifest["before"]["hs"],
        "hs_keyword_after": (manifest["after"] or {}).get("hs"),  # None: built without (see build_base)
        "benign_refusal_rate_after": (manifest["after"] or {}).get("benign_refusal_rate"),
        "built_s_this_run": built_s,
    }
