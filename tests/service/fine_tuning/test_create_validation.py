"""POST /v1/fine_tuning/jobs with hostile bodies: every one is a 400 in OpenAI's shape naming the field, never a
500, on SQLite and PostgreSQL (issue 14 item 2)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.service.helpers import http_error, jsonl

BASE = "tiny-aligned"
HP = "method.supervised.hyperparameters"
BIG = 2**70  # beyond 64 bits: orjson (the idempotency hash) cannot encode it


def nested(depth: int) -> Any:
    value: Any = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


@pytest.fixture
def train_id(http: httpx.Client) -> str:
    r = http.post("/files", data={"purpose": "fine-tune"}, files={"file": ("t.jsonl", jsonl(40))})
    assert r.status_code == 200, r.text
    return r.json()["id"]


def error_of(r: httpx.Response, status: int = 400) -> dict:
    return http_error(r, status, "invalid_request_error")


HOSTILE: list[tuple[str, dict[str, Any], str]] = [
    ("huge int n_epochs", {"hyperparameters": {"n_epochs": BIG}}, "hyperparameters.n_epochs"),
    (
        "huge int nested",
        {"method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": BIG}}}},
        f"{HP}.batch_size",
    ),
    ("huge int in dpo", {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": BIG}}}}, "method.dpo"),
    (
        "huge int in integrations",
        {"integrations": [{"type": "wandb", "wandb": {"project": BIG}}]},
        "integrations.0.wandb.project",
    ),
    ("untyped integration", {"integrations": [{"anything": {"goes": [1, 2]}}]}, "integrations.0.type"),
    ("supported-looking integration", {"integrations": [{"type": "wandb", "wandb": {"project": "p"}}]}, "integrations"),
    ("unknown key in method", {"method": {"type": "supervised", "extra": {"a": 1}}}, "method.extra"),
    ("dpo", {"method": {"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.1}}}}, "method.type"),
    ("reinforcement", {"method": {"type": "reinforcement", "reinforcement": {}}}, "method.type"),
    ("n_epochs true", {"hyperparameters": {"n_epochs": True}}, "hyperparameters.n_epochs"),
    ("n_epochs string", {"hyperparameters": {"n_epochs": "3"}}, "hyperparameters.n_epochs"),
    ("batch_size true", {"hyperparameters": {"batch_size": True}}, "hyperparameters.batch_size"),
    ("batch_size string", {"hyperparameters": {"batch_size": "8"}}, "hyperparameters.batch_size"),
    ("lr string", {"hyperparameters": {"learning_rate_multiplier": "0.5"}}, "hyperparameters.learning_rate_multiplier"),
    ("lr true", {"hyperparameters": {"learning_rate_multiplier": True}}, "hyperparameters.learning_rate_multiplier"),
    (
        "lr subnormal",
        {"hyperparameters": {"learning_rate_multiplier": 1e-320}},
        "hyperparameters.learning_rate_multiplier",
    ),
    ("lr zero", {"hyperparameters": {"learning_rate_multiplier": 0}}, "hyperparameters.learning_rate_multiplier"),
    ("lr too big", {"hyperparameters": {"learning_rate_multiplier": 10.5}}, "hyperparameters.learning_rate_multiplier"),
    ("n_epochs 51", {"hyperparameters": {"n_epochs": 51}}, "hyperparameters.n_epochs"),
    ("batch_size 257", {"hyperparameters": {"batch_size": 257}}, "hyperparameters.batch_size"),
    (
        "nested n_epochs 0",
        {"method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 0}}}},
        f"{HP}.n_epochs",
    ),
    ("seed true", {"seed": True}, "seed"),
    ("NUL in model", {"model": "tiny\x00aligned"}, "model"),
    ("long model", {"model": "m" * 10_000}, "model"),
    ("NUL in training_file", {"training_file": "file-\x00"}, "training_file"),
    ("long training_file", {"training_file": "f" * 10_000}, "training_file"),
    ("NUL in validation_file", {"validation_file": "file-\x00"}, "validation_file"),
    ("NUL in suffix", {"suffix": "a\x00b"}, "suffix"),
    ("NUL in metadata value", {"metadata": {"team": "red\x00"}}, "metadata"),
    ("NUL in metadata key", {"metadata": {"te\x00am": "red"}}, "metadata"),
    ("deep integrations", {"integrations": [nested(300)]}, None),
    ("deep metadata", {"metadata": nested(300)}, None),
]


@pytest.mark.parametrize(("extra", "param"), [(e, p) for _, e, p in HOSTILE], ids=[i for i, _, _ in HOSTILE])
def test_hostile_body_is_400_naming_the_field(http: httpx.Client, train_id: str, extra: dict, param) -> None:
    r = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": train_id, **extra})
    assert error_of(r)["param"] == param


@pytest.mark.parametrize("literal", ["NaN", "Infinity", "-Infinity"])
def test_non_finite_learning_rate_is_400(http: httpx.Client, train_id: str, literal: str) -> None:
    hp = f'"hyperparameters": {{"learning_rate_multiplier": {literal}}}'  # not JSON, but json.loads takes it
    raw = f'{{"model": "{BASE}", "training_file": "{train_id}", {hp}}}'
    r = http.post("/fine_tuning/jobs", content=raw, headers={"Content-Type": "application/json"})
    assert error_of(r)["param"] == "hyperparameters.learning_rate_multiplier"


@pytest.mark.parametrize("content_type", ["application/json", None])
def test_json_nested_100k_levels_is_400(http: httpx.Client, content_type: str | None) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    r = http.post("/fine_tuning/jobs", content=b"[" * 100_000 + b"]" * 100_000, headers=headers)
    assert "nests deeper than 64" in error_of(r)["message"]


def test_bounds_that_remain_valid(http: httpx.Client, train_id: str) -> None:
    """'auto', the range ends and brackets inside strings (which are not nesting) are all accepted."""
    body = {
        "model": BASE,
        "training_file": train_id,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 50, "batch_size": 256}}},
        "hyperparameters": {"learning_rate_multiplier": 1e-6},
        "metadata": {"brackets": "[" * 200, "k" * 64: "v" * 512},
        "seed": 2**31 - 1,
    }
    r = http.post("/fine_tuning/jobs", json=body)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["hyperparameters"] == {"n_epochs": 50, "batch_size": 256, "learning_rate_multiplier": 1e-6}
    assert job["metadata"]["brackets"] == "[" * 200 and job["seed"] == 2**31 - 1
    auto = {"n_epochs": "auto", "batch_size": "auto", "learning_rate_multiplier": "auto"}
    r = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": train_id, "hyperparameters": auto})
    assert r.status_code == 200 and r.json()["hyperparameters"]["learning_rate_multiplier"] == 1.0


def test_validation_file_must_differ_from_training_file(http: httpx.Client, train_id: str) -> None:
    r = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": train_id, "validation_file": train_id})
    err = error_of(r)
    assert err["param"] == "validation_file" and "training_file" in err["message"]
    other = http.post("/files", data={"purpose": "fine-tune"}, files={"file": ("v.jsonl", jsonl(12))}).json()["id"]
    r = http.post("/fine_tuning/jobs", json={"model": BASE, "training_file": train_id, "validation_file": other})
    assert r.status_code == 200 and r.json()["validation_file"] == other


def test_idempotency_key_length(http: httpx.Client, train_id: str) -> None:
    body = {"model": BASE, "training_file": train_id}
    r = http.post("/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "k" * 256})
    assert error_of(r)["param"] == "Idempotency-Key"
    first = http.post("/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "k" * 255})
    again = http.post("/fine_tuning/jobs", json=body, headers={"Idempotency-Key": "k" * 255})
    assert first.status_code == 200 and again.json()["id"] == first.json()["id"]
