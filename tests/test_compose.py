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


def _mounts(service: dict) -> dict[str, Path]:
    """Container path → host path of a service's bind mounts (relative to the compose file)."""
    binds = [v.split(":") for v in service["volumes"] if v.startswith("./")]
    return {target: ROOT / source for source, target, *_ in binds}


def test_prometheus_scrapes_the_api_and_every_worker_on_their_ports() -> None:
    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    prometheus = services["prometheus"]
    config_path = _mounts(prometheus)["/etc/prometheus/prometheus.yml"]
    assert f"--config.file={'/etc/prometheus/prometheus.yml'}" in prometheus["command"]
    jobs = {j["job_name"]: j for j in yaml.safe_load(config_path.read_text())["scrape_configs"]}

    api = jobs["ftaas-api"]
    assert api.get("metrics_path", "/metrics") == "/metrics"
    (target,) = [t for c in api["static_configs"] for t in c["targets"]]
    host, port = target.split(":")
    assert host == "api" and any(p.split(":")[-1] == port for p in services["api"]["ports"])
    assert "api" in prometheus["depends_on"]

    # Worker replicas (--scale worker=N) are found by DNS, on the port each replica serves its metrics on.
    (worker,) = jobs["ftaas-worker"]["dns_sd_configs"]
    assert worker["names"] == ["worker"] and worker["type"] == "A"
    env = services["worker"]["environment"]
    assert int(env["FTAAS_WORKER_METRICS_PORT"]) == worker["port"]
    assert str(worker["port"]) in services["worker"]["expose"]
    assert "worker_metrics_port" in Settings.model_fields and Settings.model_fields["worker_metrics_port"].default == 0


def test_grafana_is_provisioned_with_the_datasource_and_a_dashboard_of_ftaas_metrics() -> None:
    import json
    import re

    services = yaml.safe_load((ROOT / "docker-compose.yml").read_text())["services"]
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    provisioning = mounts["/etc/grafana/provisioning"]
    (source,) = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())["datasources"]
    prometheus_port = services["prometheus"]["ports"][0].split(":")[-1]
    assert source["type"] == "prometheus" and source["url"] == f"http://prometheus:{prometheus_port}"
    (provider,) = yaml.safe_load((provisioning / "dashboards" / "ftaas.yml").read_text())["providers"]
    dashboards = mounts[provider["options"]["path"]]
    (board,) = [json.loads(p.read_text()) for p in dashboards.glob("*.json")]
    exprs = [t["expr"] for p in board["panels"] for t in p["targets"]]
    assert all(t["datasource"]["uid"] == source["uid"] for p in board["panels"] for t in p["targets"])
    used = set(re.findall(r"\bftaas_[a-z_]+", " ".join(exprs)))
    expected = (
        "ftaas_http_requests_total ftaas_http_request_duration_seconds_bucket ftaas_jobs "
        "ftaas_queue_waiting_messages ftaas_worker_heartbeat_age_seconds ftaas_worker_job "
        "ftaas_job_queue_seconds_bucket ftaas_job_run_seconds_bucket ftaas_worker_trained_tokens_total "
        "ftaas_job_eval_harmful_score_ratio_bucket ftaas_job_eval_accuracy_ratio_bucket "
        "ftaas_safety_gate_failures_total ftaas_screens ftaas_alignments"
    )
    assert set(expected.split()) <= used, set(expected.split()) - used
    # Every name the dashboard queries is one the code defines (a typo would be an empty panel, not an error).
    modules = [*(ROOT / "service" / "metrics").glob("*.py"), ROOT / "worker" / "metrics.py"]
    source = "".join(m.read_text() for m in modules)
    defined = {re.sub(r"_(bucket|total|count|sum|info)$", "", name) for name in used}
    assert all(f'"{name}"' in source for name in defined), [n for n in defined if f'"{n}"' not in source]
    assert "grafana" in services and services["grafana"]["depends_on"]["prometheus"]
