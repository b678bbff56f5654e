"""Generated bad input (issue 20, item 6): Hypothesis builds malformed chat JSONL files and job bodies from valid ones,
each with one known mutation, and sends them to the live API on both stacks.

A refused upload must be a 400 whose message names the first bad line and the field path the mutation broke, and
must leave no bytes in the store; a refused job body must be a 400 whose `param` is the path of the field broken.
Valid files and bodies from the same strategies must be accepted, so the tests fail both ways. Examples are
derandomized (no example database) so CI sees the same cases every run; each test prints its figures.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, example, given, settings

from tests.live import LiveAPI
from tests.service import generated as gen
from tests.service.helpers import jsonl

# Hypothesis explores on SQLite; PostgreSQL + S3 + Redis re-runs the first, derandomized, examples.
EXAMPLES = {"sqlite": {"files": 200, "uploads": 40, "jobs": 300}, "postgres": {"files": 30, "uploads": 8, "jobs": 50}}
_SUMMARY = re.compile(r"Invalid training file: \d+ errors?\. (.*)", re.S)
VALID_FILE = gen.GeneratedFile(jsonl(12), None, None)
_RECORDED = re.compile(r"\(file (file-[A-Za-z0-9]+) was recorded with status 'error'\)")


def _settings(n: int) -> settings:
    return settings(
        max_examples=n,
        deadline=None,
        derandomize=True,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


@pytest.fixture
def http(api: LiveAPI) -> Iterator[httpx.Client]:
    api.register_base("tiny-aligned")
    with httpx.Client(base_url=api.v1, headers={"Authorization": f"Bearer {api.new_key()}"}, timeout=60) as c:
        yield c


@pytest.fixture
def figures(api: LiveAPI, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]) -> Iterator[Counter]:
    """Counts what the API answered; printed (past pytest's capture) as one JSON line when the test ends."""
    counts: Counter = Counter()
    yield counts
    invalid = counts["invalid"]
    line = {
        "test": request.node.originalname,
        "backend": api.backend,
        "examples": counts["examples"],
        "invalid": invalid,
        "invalid_4xx": counts["invalid_4xx"],
        "valid": counts["valid"],
        "valid_accepted": counts["valid_2xx"],
        "share_4xx": round(counts["invalid_4xx"] / invalid, 4) if invalid else None,
        "kinds": sum(1 for k in counts if k.startswith("kind:")),  # distinct mutations / params broken
    }
    with capsys.disabled():
        print("\ngenerated-inputs " + json.dumps(line))


def _check_refusal(r: httpx.Response, file: gen.GeneratedFile, counts: Counter) -> str:
    """The upload's 400 names the first bad line and its field; returns the message."""
    assert r.status_code == 400, (r.status_code, r.text[:500], file.data[:300])
    counts["invalid_4xx"] += 1
    error = r.json()["error"]
    assert (
        error["type"] == "invalid_request_error" and error["param"] == "file" and error["code"] == "invalid_file_format"
    )
    match = _SUMMARY.match(error["message"])
    assert match, error["message"]
    assert file.bad is not None and file.first_bad is not None
    where = f"line {file.first_bad}" + (f", {file.bad.field}" if file.bad.field else "")
    first = match.group(1)
    assert first.startswith(where + ": "), (where, file.bad, first[:300])
    assert file.bad.fragment in first[len(where) :].split("; line ")[0], (file.bad, first[:300])
    return error["message"]


def _upload_one(api: LiveAPI, http: httpx.Client, file: gen.GeneratedFile, counts: Counter) -> None:
    counts["examples"] += 1
    r = http.post("/files", files={"file": ("g.jsonl", file.data)}, data={"purpose": "fine-tune"})
    assert r.status_code < 500, r.text
    if file.bad is None:
        counts["valid"] += 1
        assert r.status_code == 200, (r.text[:500], file.data[:300])
        counts["valid_2xx"] += 1
        assert r.json()["status"] == "processed"
        return
    counts["invalid"] += 1
    counts[f"kind:{file.bad.fragment}"] += 1
    message = _check_refusal(r, file, counts)
    recorded = _RECORDED.search(message)
    assert recorded, message
    # The refusal is kept as a row with status 'error' (files.retrieve shows why); its bytes are never stored.
    file_id = recorded.group(1)
    assert api.store.list(f"files/{file_id}") == []
    row = http.get(f"/files/{file_id}").json()
    assert row["status"] == "error" and row["status_details"] in message
    assert http.get(f"/files/{file_id}/content").status_code == 400


def _max_line(api: LiveAPI) -> int:
    return api.settings.max_line_bytes


def test_generated_files_through_post_files(api: LiveAPI, http: httpx.Client, figures: Counter) -> None:
    @_settings(EXAMPLES[api.backend]["files"])
    @given(file=gen.chat_file(_max_line(api), api.settings.min_examples))
    @example(file=VALID_FILE)  # the short runs must also see a file that is accepted
    def run(file: gen.GeneratedFile) -> None:
        _upload_one(api, http, file, figures)

    run()
    assert figures["invalid_4xx"] == figures["invalid"] > 0 and figures["valid_2xx"] == figures["valid"] > 0


def _upload_in_parts(api: LiveAPI, http: httpx.Client, file: gen.GeneratedFile, counts: Counter, parts: int) -> None:
    counts["examples"] += 1
    before = set(api.store.list("files/"))
    body = {"bytes": len(file.data), "filename": "g.jsonl", "mime_type": "text/jsonl", "purpose": "fine-tune"}
    upload = http.post("/uploads", json=body).json()
    size = -(-len(file.data) // parts)
    ids = [
        http.post(f"/uploads/{upload['id']}/parts", files={"data": ("p", file.data[i : i + size])}).json()["id"]
        for i in range(0, len(file.data), size)
    ]
    r = http.post(f"/uploads/{upload['id']}/complete", json={"part_ids": ids})
    assert r.status_code < 500, r.text
    if file.bad is None:
        counts["valid"] += 1
        assert r.status_code == 200 and r.json()["status"] == "completed", r.text[:500]
        counts["valid_2xx"] += 1
        return
    counts["invalid"] += 1
    counts[f"kind:{file.bad.fragment}"] += 1
    message = _check_refusal(r, file, counts)
    assert message.endswith(f"(upload {upload['id']} is discarded)")
    assert api.store.list(f"uploads/{upload['id']}/") == [] and set(api.store.list("files/")) == before


def test_generated_files_through_the_uploads_api(api: LiveAPI, http: httpx.Client, figures: Counter) -> None:
    @_settings(EXAMPLES[api.backend]["uploads"])
    @given(file=gen.chat_file(_max_line(api), api.settings.min_examples), parts=gen.st.integers(1, 3))
    @example(file=VALID_FILE, parts=2)
    def run(file: gen.GeneratedFile, parts: int) -> None:
        _upload_in_parts(api, http, file, figures, parts)

    run()
    assert figures["invalid_4xx"] == figures["invalid"] > 0 and figures["valid_2xx"] == figures["valid"] > 0


def _job_checker(http: httpx.Client, counts: Counter) -> Callable[[dict[str, Any], str | None], None]:
    def check(body: dict[str, Any], param: str | None) -> None:
        counts["examples"] += 1
        r = http.post("/fine_tuning/jobs", json=body)
        assert r.status_code < 500, (body, r.text[:500])
        if param is None:
            counts["valid"] += 1
            assert r.status_code == 200, (body, r.text[:500])
            counts["valid_2xx"] += 1
            return
        counts["invalid"] += 1
        assert r.status_code == 400, (body, param, r.text[:500])
        counts["invalid_4xx"] += 1
        counts[f"kind:{param}"] += 1
        error = r.json()["error"]
        assert error["type"] == "invalid_request_error", error
        assert error["param"] == param, (param, body, error)
        last = param.rsplit(".", 1)[-1]
        assert param in error["message"] or last in error["message"], (param, error)

    return check


def test_generated_job_bodies(api: LiveAPI, http: httpx.Client, figures: Counter) -> None:
    training = http.post("/files", files={"file": ("t.jsonl", jsonl(12))}, data={"purpose": "fine-tune"}).json()["id"]
    other = http.post("/files", files={"file": ("v.jsonl", jsonl(12, 50))}, data={"purpose": "fine-tune"}).json()["id"]
    check = _job_checker(http, figures)

    @_settings(EXAMPLES[api.backend]["jobs"])
    @given(case=gen.job_body(training, other))
    # Found by this test: an out-of-range top-level hyperparameter was named as method.supervised.hyperparameters.…
    @example(
        case=(
            {"model": "tiny-aligned", "training_file": training, "hyperparameters": {"n_epochs": 0}},
            "hyperparameters.n_epochs",
        )
    )
    @example(
        case=(
            {
                "model": "tiny-aligned",
                "training_file": training,
                "method": {"type": "supervised", "supervised": {"hyperparameters": {"batch_size": 1}}},
            },
            "method.supervised.hyperparameters.batch_size",
        )
    )
    def run(case: tuple[dict[str, Any], str | None]) -> None:
        check(*case)

    run()
    assert figures["invalid_4xx"] == figures["invalid"] > 0 and figures["valid_2xx"] == figures["valid"] > 0
