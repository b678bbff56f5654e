"""End to end with a real worker: a job whose `model` is an earlier job's fine-tuned model trains on from that
model's adapter and publishes a new fine-tuned model on the same base (both modes, as test_runner.py)."""

from __future__ import annotations

import json
import uuid

import torch
from safetensors.torch import load

from tests.live import wait_for
from tests.worker.fine_tuning.test_runner import BASE, Stack, chats, stack, status_of  # noqa: F401


def _lora_a(live: Stack, job_id: str) -> dict[str, torch.Tensor]:
    weights = load(live.api.store.get_bytes(f"jobs/{job_id}/adapter/adapter_model.safetensors"))
    return {k: v for k, v in weights.items() if "lora_A" in k}


def test_a_job_continues_from_a_fine_tuned_model(stack: Stack) -> None:  # noqa: F811
    org = f"org-{uuid.uuid4().hex[:8]}"
    client = stack.api.client(stack.api.new_key(org))
    worker = stack.worker()
    try:
        first = stack.job(client, n=12, epochs=1)
        wait_for(lambda: status_of(client, first.id, "succeeded"), 180, f"the first job\n{stack.log_tail()}")
        parent = client.fine_tuning.jobs.retrieve(first.id).fine_tuned_model
        f = client.files.create(file=("more.jsonl", chats(12)), purpose="fine-tune")
        second = client.fine_tuning.jobs.create(
            model=parent, training_file=f.id, suffix="more", seed=first.seed + 1, hyperparameters={"n_epochs": 1}
        )
        assert second.model == parent
        wait_for(lambda: status_of(client, second.id, "succeeded"), 180, f"the second job\n{stack.log_tail()}")
    finally:
        worker.stop()
    second = client.fine_tuning.jobs.retrieve(second.id)
    assert second.model == parent and second.fine_tuned_model == f"ft:{BASE}:{org}:more:{second.id}"
    assert second.fine_tuned_model in [m.id for m in client.models.list()]
    # A fresh LoRA under another seed would start from unrelated random A matrices; two small steps on from the
    # parent's stay close to the parent's.
    before, after = _lora_a(stack, first.id), _lora_a(stack, second.id)
    assert before.keys() == after.keys() and before
    assert all((after[k] - before[k]).norm() < 0.1 * before[k].norm() for k in before)
    # Safety is still measured against the pre-aligned base, not the parent.
    report = json.loads(stack.api.store.get_bytes(f"jobs/{second.id}/report.json"))
    assert report["base_model"] == BASE
