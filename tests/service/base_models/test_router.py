"""Provider alignment runs through the admin API (no worker here: runs stay queued, messages sit in the broker)."""

from __future__ import annotations

import uuid

import httpx
import redis

from tests.live import LiveAPI


def admin(api: LiveAPI) -> dict[str, str]:
    return {"Authorization": f"Bearer {api.new_key(admin=True)}"}


def queued_ids(api: LiveAPI) -> str:
    if api.settings.broker_url.startswith("filesystem"):
        return "".join(p.read_text(errors="replace") for p in api.settings.broker_dir.glob("*.msg"))
    return "".join(b.decode() for b in redis.Redis.from_url(api.settings.broker_url).lrange("gpu.fast", 0, -1))


def test_align_returns_a_status_object_that_can_be_polled_and_listed(api: LiveAPI) -> None:
    headers = admin(api)
    name = f"aligned-{uuid.uuid4().hex[:8]}"
    r = httpx.post(
        f"{api.v1}/admin/base_models/align", json={"name": name, "max_steps": 3, "gpu_class": "fast"}, headers=headers
    )
    assert r.status_code == 202, r.text
    body = r.json()
    assert body["id"].startswith("balign_") and body["object"] == "base_model.alignment"
    assert (body["name"], body["status"], body["step"], body["attempts"]) == (name, "queued", 0, 0)
    assert body["spec"]["max_steps"] == 3 and body["gpu_class"] == "fast" and body["result"] is None
    assert body["id"] in queued_ids(api)  # published on the base model's GPU queue
    got = httpx.get(f"{api.v1}/admin/base_models/alignments/{body['id']}", headers=headers)
    assert got.status_code == 200 and got.json() == body
    listed = httpx.get(f"{api.v1}/admin/base_models/alignments", headers=headers).json()
    assert listed["object"] == "list" and body in listed["data"]

    again = httpx.post(f"{api.v1}/admin/base_models/align", json={"name": name}, headers=headers)
    assert again.status_code == 400
    assert again.json()["error"]["param"] == "name" and again.json()["error"]["code"] == "alignment_in_progress"


def test_alignment_errors(api: LiveAPI) -> None:
    headers = admin(api)
    missing = httpx.get(f"{api.v1}/admin/base_models/alignments/balign_nope", headers=headers)
    assert missing.status_code == 404 and missing.json()["error"]["param"] == "id"
    bad = httpx.post(f"{api.v1}/admin/base_models/align", json={"name": "no spaces allowed"}, headers=headers)
    assert bad.status_code == 400 and bad.json()["error"]["param"] == "name"
    unknown = httpx.post(f"{api.v1}/admin/base_models/align", json={"name": "x", "steps": 3}, headers=headers)
    assert unknown.status_code == 400 and "steps" in unknown.text
    customer = {"Authorization": f"Bearer {api.new_key()}"}
    assert httpx.get(f"{api.v1}/admin/base_models/alignments", headers=customer).status_code == 403
