"""Moving bytes between the object store and a worker's local scratch (base models, files, checkpoints, outputs).

Checkpoints are uploaded file by file with their manifest written **last**: a checkpoint without a manifest in
the store is incomplete (its writer died) and is never resumed from. Adapter folders (the job's, a checkpoint's)
go up with `adapter_config.json` after their weights, for the same reason: every reader of an adapter (PEFT's
`from_pretrained`, vLLM's `load_lora_adapter`, worker/inference's resolver) opens that file first, so a prefix an
outage cut short has none and is never loaded as an adapter.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import uuid
from pathlib import Path
from typing import Any

from service.base_models.service import STORE_SCHEME  # noqa: F401  (re-exported for the runner)
from service.config import Settings
from service.orm import BaseModelRow, JobRow
from service.storage import ObjectStore
from worker.evaluation import holdout_indices
from worker.training.checkpoint import MANIFEST

# Present under a base model's prefix while it is being published (worker/alignment/publish.py), and left there by
# a publish an outage cut short: readers refuse the prefix, so half a model is never trained on or served.
PUBLISHING = ".publishing"


class IncompleteUpload(Exception):
    """The store prefix is being published, or its publish was cut short: nothing under it may be loaded."""


def _fresh(path: Path) -> Path:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    return path


def base_model_version(base: BaseModelRow) -> str:
    """Changes whenever the name is registered again (a re-alignment publishes new weights under the same name)."""
    key = json.dumps([base.path, base.created_at, base.manifest], sort_keys=True, default=str)
    return hashlib.sha256(key.encode()).hexdigest()[:16]


def base_model_dir(settings: Settings, store: ObjectStore, base: BaseModelRow) -> Path:
    """A local folder with the base model: its registered path, or a cached download of its store prefix.

    The cache is per registration (``base-models/{name}/{version}``), so a re-aligned base is downloaded again;
    all but the two newest versions of a name are removed (an older one may still be in use by a running job).
    """
    if not base.path.startswith(STORE_SCHEME):
        return Path(base.path)
    root = settings.work_dir / "base-models" / base.name
    final = root / base_model_version(base)
    if (final / "config.json").is_file():
        return final
    prefix = base.path.removeprefix(STORE_SCHEME).rstrip("/") + "/"
    if store.exists(prefix + PUBLISHING):  # don't download gigabytes only to refuse them
        raise IncompleteUpload(_incomplete(base.name))
    try:
        fetch_dir(store, prefix, final, fenced_by=PUBLISHING)
    except IncompleteUpload:
        raise IncompleteUpload(_incomplete(base.name)) from None
    versions = sorted((p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")), key=os.path.getmtime)
    for old in versions[:-2]:
        if old != final:
            shutil.rmtree(old, ignore_errors=True)
    return final


def _incomplete(name: str) -> str:
    return (
        f"Base model {name} is being published again, or its last publish was cut short (an object-store "
        "outage): it can't be loaded until a publish completes."
    )


def fetch_dir(store: ObjectStore, prefix: str, final: Path, *, fenced_by: str | None = None) -> Path:
    """Download ``prefix`` into ``final`` through a sibling temp folder, so no reader ever sees half a folder.

    Another process on this machine may publish the same folder first; its bytes are the same, so it wins.
    ``fenced_by``: a marker key under ``prefix`` whose presence, listed or appearing during the download, means a
    writer is at work there (IncompleteUpload).
    """
    tmp = _fresh(final.parent / f".{final.name}.{uuid.uuid4().hex}")
    store.download_dir(prefix, tmp)
    if fenced_by is not None and ((tmp / fenced_by).exists() or store.exists(prefix + fenced_by)):
        shutil.rmtree(tmp, ignore_errors=True)
        raise IncompleteUpload(prefix)
    try:
        os.replace(tmp, final)
    except OSError:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def job_dir(settings: Settings, job_id: str) -> Path:
    return settings.work_dir / "jobs" / job_id


def parent_adapter_dir(settings: Settings, store: ObjectStore, job: JobRow) -> Path | None:
    """The adapter a job continuing a fine-tuned model or checkpoint starts from, downloaded into its scratch
    folder; None for a fresh LoRA. It comes from the prefix the API resolved at create time, without a second
    access check: a grant revoked since does not take it from a job already accepted (service/fine_tuning/parent.py).
    """
    if job.parent_adapter_prefix is None:
        return None
    dest = _fresh(job_dir(settings, job.id) / "parent-adapter")
    store.download_dir(job.parent_adapter_prefix, dest)
    return dest


def fetch_file(store: ObjectStore, key: str, dest: Path) -> Path:
    dest.parent.mkdir(parents=True, exist_ok=True)
    store.download_file(key, dest)
    return dest


ADAPTER_CONFIG = "adapter_config.json"


def upload_order(local: Path, last: str | None = None) -> list[Path]:
    """The files under ``local`` in the order that publishes them: weights, adapter configs, then ``local/last``."""
    files = sorted(p for p in local.rglob("*") if p.is_file())
    return sorted(files, key=lambda p: (last is not None and p == local / last, p.name == ADAPTER_CONFIG))


def checkpoint_prefix(job_id: str, step: int) -> str:
    return f"jobs/{job_id}/checkpoints/step-{step}/"


def upload_checkpoint(store: ObjectStore, job_id: str, step: int, local: Path) -> str:
    prefix = checkpoint_prefix(job_id, step)
    for path in upload_order(local, last=MANIFEST):
        store.put_file(prefix + path.relative_to(local).as_posix(), path)
    return prefix


def download_checkpoint(store: ObjectStore, prefix: str, dest: Path) -> Path | None:
    """The checkpoint at `prefix` in a local folder, or None if it is incomplete in the store."""
    if not store.exists(prefix + MANIFEST):
        return None
    store.download_dir(prefix, _fresh(dest))
    return dest


def upload_outputs(store: ObjectStore, job_id: str, adapter_dir: Path, attenuation: Path | None) -> str:
    """Publish the job's adapter in place, with no delete first: a retried attempt writes the same file names,
    each put replaces one object atomically, and ``adapter_config.json`` goes last, so a prefix that already
    holds a deployed adapter is never empty, not even for a moment (a delete-then-upload was)."""
    prefix = f"jobs/{job_id}/adapter/"
    for path in upload_order(adapter_dir):
        store.put_file(prefix + path.relative_to(adapter_dir).as_posix(), path)
    if attenuation is not None:
        store.put_file(f"jobs/{job_id}/attenuation.json", attenuation)
    return prefix


def results_csv(rows: list[dict[str, Any]]) -> bytes:
    """OpenAI-style results file: one row per step (step, train_loss, ..., plus Antibody's weight stats)."""
    out = io.StringIO()
    if rows:
        writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows({k: ("" if v is None else v) for k, v in r.items()} for r in rows)
    return out.getvalue().encode()


def split_holdout(train: Path, seed: int, min_lines: int = 20) -> tuple[Path, Path, list[int]] | None:
    """Hold a seeded ~10% of the training lines out for FA. Returns (train part, held-out part, map from the train
    part's line numbers to the original ones), or None when the file is too small to spare lines."""
    lines = [line for line in train.read_text(encoding="utf-8").splitlines() if line.strip()]
    if len(lines) < min_lines:
        return None
    held = set(holdout_indices(len(lines), fraction=0.1, max_n=200, seed=seed))
    kept = [i for i in range(len(lines)) if i not in held]
    part, holdout = train.with_name("train_part.jsonl"), train.with_name("holdout.jsonl")
    part.write_text("".join(lines[i] + "\n" for i in kept), encoding="utf-8")
    holdout.write_text("".join(lines[i] + "\n" for i in sorted(held)), encoding="utf-8")
    return part, holdout, [i + 1 for i in kept]
