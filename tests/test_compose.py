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


def test_compose_serves_through_vllm_with_runtime_lora_loading() -> None:
    import json

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    vllm = services["vllm"]
    assert "--enable-lora" in vllm["command"] and vllm["environment"]["VLLM_ALLOW_RUNTIME_LORA_UPDATING"] == "True"
    assert vllm["deploy"]["resources"]["reservations"]["devices"][0]["capabilities"] == ["gpu"]
    api = services["api"]["environment"]
    assert json.loads(api["FTAAS_INFERENCE_BACKENDS"]) == {"*": "http://vllm:8000"}
    mirror_mount = next(v.split(":")[1] for v in vllm["volumes"] if v.startswith("mirror:"))
    assert api["FTAAS_INFERENCE_LORA_ROOT"].rstrip("/") == mirror_mount  # adapters are read where they are mirrored
    assert any(v.startswith("mirror:") for v in services["store-mirror"]["volumes"])
