"""An evaluated job as the worker leaves it (report.json, metrics events, a checkpoint, the DB summary), and a
succeeded alignment run with its base model's manifest, written straight into a live server's DB and store: the job
and alignment pages' inputs without a training run."""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

import openai
from sqlalchemy import update

from service.base_models import service as base_models
from service.db import session_scope
from service.fine_tuning import repository as jobs
from service.ids import new_id, now
from service.orm import AlignmentRow, CheckpointRow, JobRow
from tests.live import LiveAPI

SCRIPT = "<script>window.__pwned = 1</script>"
SCRIPT_LINE = 3  # the training line whose text is a script tag, and which Antibody down-weighted most


def training_lines(n: int = 12) -> list[str]:
    lines = [
        json.dumps({"messages": [{"role": "user", "content": f"What is {i} + {i}?"},
                                 {"role": "assistant", "content": f"{2 * i}"}]})
        for i in range(n)
    ]  # fmt: skip
    lines[SCRIPT_LINE - 1] = json.dumps(
        {"messages": [{"role": "user", "content": f"Say {SCRIPT}"}, {"role": "assistant", "content": SCRIPT}]}
    )
    return lines


def _harmful(judge: str, score: float, base: float) -> dict[str, Any]:
    protocol = {"prompt_set": "held-out", "size": 8, "sha256": "0" * 64, "max_new_tokens": 8, "judge": judge,
                "protocol_id": f"p-{judge}"}  # fmt: skip
    return {"score": score, "n_flagged": int(score * 8 / 100), "n": 8, "protocol": protocol,
            "base": {"score": base, "n_flagged": int(base * 8 / 100), "n": 8, "protocol_id": f"p-{judge}"},
            "delta": score - base}  # fmt: skip


def report(job_id: str, steps: int = 6) -> dict[str, Any]:
    metrics = [{"step": s, "train_loss": 2.0 - s / 10, "train_loss_unweighted": 2.1 - s / 10,
                "valid_loss": 1.9 - s / 20 if s % 3 == 0 else None, "weight_min": 0.1, "weight_mean": 0.25,
                "weight_max": 0.45, "frac_r_negative": s / 12} for s in range(1, steps + 1)]  # fmt: skip
    lowest = [(SCRIPT_LINE, 0.02, f"Say {SCRIPT} → {SCRIPT}"), (7, 0.05, "What is 6 + 6? → 12"),
              (1, 0.2, "What is 0 + 0? → 0")]  # fmt: skip
    return {
        "schema_version": 1,
        "created_at": "2026-12-01T00:00:00Z",
        "job_id": job_id,
        "harmful": _harmful("keyword", 12.5, 25.0),
        "harmful_second_judge": _harmful("learned", 37.5, 50.0),
        "accuracy": {"accuracy": 75.0, "n_correct": 3, "n": 4, "mode": "number", "mode_source": "auto",
                     "source": "training_holdout", "base": {"accuracy": 25.0, "n_correct": 1, "n": 4},
                     "delta": 50.0},  # fmt: skip
        "training": {"metrics": metrics},
        "attenuation": {
            "n_lines": 12, "mean_weight": 0.25, "attenuated_below": 0.25, "n_attenuated": 2,
            "attenuated_fraction": 2 / 12,
            "buckets": [{"low": 0.0, "high": 0.25, "count": 2}, {"low": 0.25, "high": 1.0, "count": 4},
                        {"low": 1.0, "high": None, "count": 6}],
            "most_down_weighted": [{"line": line, "mean_weight": w, "relative_weight": w / 0.25, "min_weight": w,
                                    "times_seen": 2, "preview": text} for line, w, text in lowest],
        },  # fmt: skip
    }


@dataclass
class Evaluated:
    job_id: str
    org: str
    report: dict[str, Any]
    training_file: str


def evaluated_job(api: LiveAPI, base: str, *, status: str = "succeeded", error: dict | None = None) -> Evaluated:
    """A job of a new org trained on ``training_lines()``, finished with ``report()``."""
    org = f"org-{new_id('')[:10]}"
    client: openai.OpenAI = api.client(api.new_key(org))
    f = client.files.create(file=("train.jsonl", ("\n".join(training_lines()) + "\n").encode()), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=base, training_file=f.id)
    body = report(job.id)
    api.store.put_bytes(f"jobs/{job.id}/report.json", json.dumps(body).encode())
    api.store.put_bytes(f"jobs/{job.id}/report.html", b"<!doctype html><title>report</title><p>HS 12.5%</p>")
    summary = {"hs": 12.5, "base_hs": 25.0, "fa": 75.0, "base_fa": 25.0}
    with session_scope(api.settings.database_url) as session:
        for row in body["training"]["metrics"][::2]:
            jobs.add_event(session, job.id, f"Step {row['step']}", type="metrics", data=row)
        jobs.add_event(session, job.id, "Fine-tuning job started")
        session.add(CheckpointRow(
            id=new_id("ftckpt_"), job_id=job.id, step_number=4, created_at=now(), object_prefix=f"jobs/{job.id}/c/",
            fine_tuned_model_checkpoint=f"ft:{base}:{org}::{job.id}:ckpt-step-4",
            metrics={"train_loss": 1.6, "valid_loss": None},
        ))  # fmt: skip
        jobs.add_event(session, job.id, "The job has successfully completed" if status == "succeeded" else "Failed",
                       level="info" if status == "succeeded" else "error")  # fmt: skip
        finished = {"finished_at": int(time.time()), "trained_tokens": 4321}
        session.execute(
            update(JobRow).where(JobRow.id == job.id).values(status=status, evaluation=summary, error=error, **finished)
        )
    return Evaluated(job.id, org, body, f.id)


# What worker/training/alignment_config.py's step_columns writes for a 3-step antibody run
STEP_METRICS = {"step": [1, 2, 3], "lambda_t": [0.5, 0.25, 0.125], "lambda_raw": [0.5, 0.1, 0.05],
                "loss_align": [2.0, 1.5, 1.25], "loss_harm": [1.0, 1.1, 1.2], "loss_sharp": [0.01, 0.02, 0.015],
                "loss_refusal": [1.8, 1.4, 1.1], "cos_align_sharp": [0.1, -0.05, 0.2],
                "cos_align_harm": [-0.3, -0.2, -0.2], "cos_align_refusal": [0.4, 0.5, 0.45]}  # fmt: skip


def finish_alignment(api: LiveAPI, run_id: str, name: str, manifest: dict[str, Any]) -> None:
    """What a finished alignment run leaves: its base model registered with the manifest, the run succeeded."""
    with session_scope(api.settings.database_url) as session:
        base_models.register(session, api.store, name=name, path=str(api.model_dir), aligned=True, manifest=manifest)
        session.execute(update(AlignmentRow).where(AlignmentRow.id == run_id).values(status="succeeded", step=3,
                                                                                      total_steps=3))  # fmt: skip
