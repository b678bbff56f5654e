"""`ftaas up` as a new user runs it: SmolLM2 pre-aligned on first start, no Redis/PostgreSQL, driven by the SDK."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from tests import servers
from tests.live import wait_for


@pytest.mark.slow
def test_embedded_up_trains_a_job_on_smollm2(tmp_path: Path) -> None:
    port = servers.free_port()
    # A small alignment budget keeps the first start short here; `make run` uses the defaults (40 steps).
    env = {
        **os.environ,
        "FTAAS_HOME": str(tmp_path / ".ftaas"),
        "FTAAS_DEMO_ALIGN_STEPS": "2",
        "FTAAS_DEMO_EVAL_HARMFUL": "8",
        "FTAAS_DEMO_EVAL_BENIGN": "8",
        "FTAAS_DEMO_RETAIN_MAX_NEW_TOKENS": "16",
        "FTAAS_EVAL_HARMFUL_PROMPTS": "8",
        "FTAAS_EVAL_MAX_NEW_TOKENS": "32",
    }
    log = (tmp_path / "up.log").open("wb")
    up = subprocess.Popen(
        [sys.executable, "-m", "service.cli", "up", "--port", str(port)],
        cwd=tmp_path,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        key_file = tmp_path / ".ftaas" / "demo-api-key"
        wait_for(key_file.exists, 600, "the demo key (after the first-start alignment)")
        client = openai.OpenAI(
            base_url=f"http://127.0.0.1:{port}/v1", api_key=key_file.read_text().strip(), max_retries=5
        )
        wait_for(lambda: b" ready." in (tmp_path / "up.log").read_bytes(), 180, "the worker")
        assert [m.id for m in client.models.list()] == ["smollm2-135m-antibody"]
        manifest = json.loads(
            (
                tmp_path / ".ftaas" / "objects" / "base-models" / "smollm2-135m-antibody" / "alignment_manifest.json"
            ).read_text()
        )
        assert manifest["stage"] == "antibody-alignment" and manifest["after"]["hs_protocol"]["size"] == 8
        rows = [
            {
                "messages": [
                    {"role": "user", "content": f"What is {i} + {i}?"},
                    {"role": "assistant", "content": f"{i} + {i} = {2 * i}."},
                ]
            }
            for i in range(12)
        ]
        f = client.files.create(
            file=("t.jsonl", "".join(json.dumps(r) + "\n" for r in rows).encode()), purpose="fine-tune"
        )
        job = client.fine_tuning.jobs.create(
            model="smollm2-135m-antibody",
            training_file=f.id,
            method={
                "type": "supervised",
                "supervised": {"hyperparameters": {"n_epochs": 1, "batch_size": 4}},
            },
        )
        created = time.monotonic()
        wait_for(lambda: client.fine_tuning.jobs.retrieve(job.id).status != "validating_files", 30, "validation")
        job = wait_for(
            lambda: (
                (j := client.fine_tuning.jobs.retrieve(job.id)).status in ("succeeded", "failed", "cancelled") and j
            ),
            600,
            "the job",
        )
        assert job.status == "succeeded", (job.error, (tmp_path / "up.log").read_text()[-3000:])
        assert time.monotonic() - created < 600
        assert job.fine_tuned_model in [m.id for m in client.models.list()]
        assert [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id) if e.type == "metrics"] == [3]
        # Serving: the embedded inference server answers for the fine-tuned model (its adapter on the real SmolLM2)
        reply = client.chat.completions.create(model=job.fine_tuned_model, max_tokens=8, temperature=0,
                                               messages=[{"role": "user", "content": "What is 2 + 2?"}])
        assert reply.model == job.fine_tuned_model and reply.choices[0].message.content
        assert 0 < reply.usage.completion_tokens <= 8

        # The provider's side: the printed dashboard URL, an owner-only admin key, the worker and the job on it.
        assert f"Dashboard:  http://127.0.0.1:{port}/dashboard" in (tmp_path / "up.log").read_text()
        admin_key = tmp_path / ".ftaas" / "admin-api-key"
        assert admin_key.stat().st_mode & 0o777 == 0o600
        dashboard = httpx.get(
            f"http://127.0.0.1:{port}/v1/admin/dashboard",
            headers={"Authorization": f"Bearer {admin_key.read_text().strip()}"},
        ).json()
        assert [w["alive"] for w in dashboard["workers"]] == [True]
        assert (dashboard["jobs"][0]["id"], dashboard["jobs"][0]["status"]) == (job.id, "succeeded")
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        try:
            up.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)
