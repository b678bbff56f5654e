"""docker-compose.yml can't run here (no Docker engine), so check what can be checked without one."""

from __future__ import annotations

from pathlib import Path

import yaml

from service.config import Settings

ROOT = Path(__file__).resolve().parents[1]


def test_compose_wires_the_distributed_mode() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    services = compose["services"]
    assert {"api", "worker", "redis", "postgres", "minio", "migrate"} <= set(services)
    for name in ("api", "worker", "migrate"):
        assert (ROOT / services[name]["build"]["dockerfile"]).is_file()
        env = services[name]["environment"]
        settings_fields = set(Settings.model_fields)
        unknown = [
            k
            for k in env
            if k.startswith("FTAAS_") and k.removeprefix("FTAAS_").lower() not in settings_fields
        ]
        assert not unknown, f"{name}: env vars that no setting reads: {unknown}"
        assert env["FTAAS_STORAGE_URL"].startswith("s3://") and env["FTAAS_BROKER_URL"].startswith("redis://")
    gpu = services["worker"]["deploy"]["resources"]["reservations"]["devices"][0]
    assert gpu["capabilities"] == ["gpu"]
    assert services["api"]["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
