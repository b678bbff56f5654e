"""The `ftaas` CLI honours FTAAS_* settings: migrate, keys create, base-models register/list/retire/reinstate."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import openai

FTAAS = [sys.executable, "-m", "service.cli"]


def run(args: list[str], env: dict[str, str], check: bool = True) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        FTAAS + args, env={**os.environ, **env}, capture_output=True, text=True, check=check
    )


def test_cli_end_to_end(api, tmp_path: Path, tiny_model: Path) -> None:
    env = {
        "FTAAS_DATABASE_URL": api.settings.database_url,
        "FTAAS_STORAGE_URL": api.settings.storage_url,
        "FTAAS_HOME": str(tmp_path),
    }
    if api.settings.s3_endpoint_url:
        env["FTAAS_S3_ENDPOINT_URL"] = api.settings.s3_endpoint_url
    assert "head" in run(["migrate"], env).stdout
    key = run(["keys", "create", "--org", f"cli-{api.backend}"], env).stdout.strip().splitlines()[-1]
    name = f"cli-base-{api.backend}"
    out = run(["base-models", "register", "--name", name, "--path", str(tiny_model), "--aligned"], env)
    assert json.loads(out.stdout)["aligned"] is True
    listed = [json.loads(line) for line in run(["base-models", "list"], env).stdout.splitlines()]
    assert name in [m["name"] for m in listed]
    bad = run(["base-models", "register", "--name", "x", "--path", str(tmp_path)], env, check=False)
    assert bad.returncode == 2 and "config.json" in bad.stderr
    client = openai.OpenAI(api_key=key, base_url=api.v1, max_retries=0)
    assert name in [m.id for m in client.models.list()]

    retired = json.loads(run(["base-models", "retire", name], env).stdout)
    assert retired["name"] == name and isinstance(retired["retired_at"], int)
    assert name not in [m.id for m in client.models.list()]
    listed = [json.loads(line) for line in run(["base-models", "list"], env).stdout.splitlines()]
    assert [m["retired_at"] for m in listed if m["name"] == name] == [retired["retired_at"]]  # still listed, as retired
    assert json.loads(run(["base-models", "reinstate", name], env).stdout)["retired_at"] is None
    assert name in [m.id for m in client.models.list()]
    unknown = run(["base-models", "retire", "no-such-base"], env, check=False)
    assert unknown.returncode == 2 and "no-such-base" in unknown.stderr
