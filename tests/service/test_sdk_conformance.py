"""openai-python, unmodified and strict, through every fine-tuning method it has, on both stacks with a real worker.

The client runs with `_strict_response_validation=True`, so every response is validated into the SDK's own types: a
missing or mistyped field fails. `exact` also fails on any field a type does not declare. The inventory test fails
when a new SDK version adds a method to these resources that this module neither exercises nor lists as
unsupported (the README's "Moving from OpenAI" table lists the same).
"""

from __future__ import annotations

import hashlib
import inspect
import uuid
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import openai
import pytest

from tests.live import wait_for
from tests.service.helpers import error_of, jsonl
from tests.worker.fine_tuning.test_runner import BASE, Stack, stack, status_of  # noqa: F401  (the live stack)

# Every public method of the resources a fine-tuning customer uses, as the pinned SDK has them.
EXERCISED = {
    "files": {"create", "retrieve", "list", "delete", "content", "retrieve_content", "wait_for_processing"},
    "fine_tuning.jobs": {"create", "retrieve", "list", "cancel", "list_events", "pause", "resume"},
    "fine_tuning.jobs.checkpoints": {"list"},
    "models": {"retrieve", "list", "delete"},
    "uploads": {"create", "cancel", "complete", "upload_file_chunked"},
    "uploads.parts": {"create"},
    "fine_tuning.checkpoints.permissions": {"create", "retrieve", "list", "delete"},
}
UNSUPPORTED = {"fine_tuning.alpha.graders": {"run", "validate"}}  # reinforcement fine-tuning
# Fields a response may carry beyond its SDK type, each documented in the README: `user_provided_suffix` is on
# OpenAI's own wire format but not in the SDK's type; `servable` says whether chat completions can call a model.
EXTENSIONS = {"FineTuningJob": {"user_provided_suffix"}, "Model": {"servable"}}


def resource(client: openai.OpenAI, path: str) -> Any:
    obj: Any = client
    for part in path.split("."):
        obj = getattr(obj, part)
    return obj


def methods(res: Any) -> set[str]:
    """Public methods (sub-resources and the raw/streaming wrappers are cached properties, not functions)."""
    return {n for n, _ in inspect.getmembers(type(res), inspect.isfunction) if not n.startswith("_")}


def exact(obj: Any) -> Any:
    """`obj`, after checking that it and everything inside carry only fields their SDK types declare."""
    if isinstance(obj, openai.BaseModel):
        extra = set(obj.model_extra or {}) - EXTENSIONS.get(type(obj).__name__, set())
        assert not extra, f"{type(obj).__name__}: fields the SDK type does not declare: {sorted(extra)}"
        for name in type(obj).model_fields:
            exact(getattr(obj, name))
    elif isinstance(obj, list):
        for item in obj:
            exact(item)
    return obj


def page(p: Any) -> list[Any]:
    """A list response's items, each exact (the page itself carries `object`/`first_id`/`last_id` like OpenAI's)."""
    return exact(list(p.data))


@dataclass
class Trained:
    client: openai.OpenAI  # strict
    lenient: openai.OpenAI  # same key, the SDK's default parsing
    job: Any
    org: str


@pytest.fixture(scope="module")
def trained(stack: Stack) -> Iterator[Trained]:  # noqa: F811
    """One org, one job trained to success by a real worker (the worker is stopped afterwards)."""
    org = f"org-{uuid.uuid4().hex[:8]}"
    key = stack.api.new_key(org)
    client = stack.api.client(key, _strict_response_validation=True)
    worker = stack.worker()
    try:
        job = stack.job(client, validation=True)
        wait_for(lambda: status_of(client, job.id, "succeeded"), 180, f"job success\n{stack.log_tail()}")
    finally:
        worker.stop()
    yield Trained(client, stack.api.client(key), client.fine_tuning.jobs.retrieve(job.id), org)


def test_every_sdk_method_of_these_resources_is_exercised_or_listed_unsupported() -> None:
    client = openai.OpenAI(api_key="x", base_url="http://127.0.0.1:9")
    for path in EXERCISED.keys() | UNSUPPORTED.keys():
        found = methods(resource(client, path))
        known = EXERCISED.get(path, set()) | UNSUPPORTED.get(path, set())
        assert found == known, f"client.{path}: new {sorted(found - known)}, gone {sorted(known - found)}"


def test_files(trained: Trained) -> None:
    files = trained.client.files
    made = exact(files.create(file=("a.jsonl", jsonl(12)), purpose="fine-tune",
                              expires_after={"anchor": "created_at", "seconds": 3600}))
    assert made.filename == "a.jsonl" and made.bytes == len(jsonl(12)) and made.expires_at == made.created_at + 3600
    assert exact(files.wait_for_processing(made.id, poll_interval=0.1)).status == "processed"
    assert exact(files.retrieve(made.id)) == exact(files.retrieve(made.id))
    assert files.content(made.id).read() == jsonl(12)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert files.retrieve_content(made.id) == jsonl(12).decode()
    other = files.create(file=("b.jsonl", jsonl(12, 40)), purpose="fine-tune")
    newest_first = page(files.list(purpose="fine-tune", order="desc", limit=100))
    ids = [f.id for f in newest_first]
    assert ids.index(other.id) < ids.index(made.id)
    first = files.list(limit=1, order="asc")
    assert first.has_more and page(files.list(limit=1, order="asc", after=first.data[0].id))[0].id != first.data[0].id
    assert [f.id for f in files.list(limit=100)] == [f.id for f in files.list(limit=2)]  # auto-pagination
    deleted = exact(files.delete(other.id))
    assert deleted.id == other.id and deleted.deleted
    with pytest.raises(openai.NotFoundError):
        files.retrieve(other.id)


def test_a_finished_job_as_openai_fills_it(trained: Trained) -> None:
    client, job = trained.client, exact(trained.job)
    assert job.status == "succeeded" and job.fine_tuned_model == f"ft:{BASE}:{trained.org}:e2e:{job.id}"
    assert job.trained_tokens and job.finished_at and job.estimated_finish is None and job.error is None
    assert job.method and job.method.type == "supervised" and job.hyperparameters.n_epochs == 2
    assert job.id in [j.id for j in page(client.fine_tuning.jobs.list(limit=100))]
    events = [exact(e) for e in client.fine_tuning.jobs.list_events(job.id, limit=5)]  # auto-paginates
    assert events[0].message == "The job has successfully completed" and len(events) > 5
    metrics = [e for e in events if e.type == "metrics"]
    assert metrics and {"step", "train_loss", "train_mean_token_accuracy"} <= set(metrics[0].data)
    checkpoints = page(client.fine_tuning.jobs.checkpoints.list(job.id, limit=100))
    newest = checkpoints[0]
    assert newest.fine_tuned_model_checkpoint == f"{job.fine_tuned_model}:ckpt-step-{newest.step_number}"
    csv = next(f for f in job.result_files if exact(client.files.retrieve(f)).filename == "step_metrics.csv")
    assert client.files.content(csv).read().decode().startswith("step,train_loss")


def test_job_create_list_filter_pause_resume_cancel(trained: Trained) -> None:
    client = trained.client
    train = client.files.create(file=("t.jsonl", jsonl(12)), purpose="fine-tune")
    tag = uuid.uuid4().hex[:8]
    job = exact(client.fine_tuning.jobs.create(model=BASE, training_file=train.id, suffix="conf", seed=7,
                                               metadata={"tag": tag}))
    assert job.status in ("validating_files", "queued") and job.seed == 7 and job.metadata == {"tag": tag}
    assert [j.id for j in page(client.fine_tuning.jobs.list(metadata={"tag": tag}))] == [job.id]
    assert exact(client.fine_tuning.jobs.retrieve(job.id)).id == job.id
    # `paused` is this service's one status outside the SDK's Literal: strict parsing refuses it (README).
    assert trained.lenient.fine_tuning.jobs.pause(job.id).status == "paused"
    with pytest.raises(openai.APIResponseValidationError):
        client.fine_tuning.jobs.retrieve(job.id)
    assert exact(client.fine_tuning.jobs.resume(job.id)).status == "queued"
    assert exact(client.fine_tuning.jobs.cancel(job.id)).status == "cancelled"
    with pytest.raises(openai.BadRequestError) as exc:
        client.fine_tuning.jobs.create(model=BASE, training_file=train.id, method={"type": "dpo"})
    assert error_of(exc.value)["param"].startswith("method")


def test_models(trained: Trained) -> None:
    client, name = trained.client, trained.job.fine_tuned_model
    listed = {m.id: m for m in page(client.models.list())}
    assert BASE in listed and name in listed and listed[name].owned_by == trained.job.organization_id
    assert exact(client.models.retrieve(name)).id == name and exact(client.models.retrieve(BASE)).id == BASE
    deleted = exact(client.models.delete(name))
    assert deleted.id == name and deleted.deleted
    assert name not in [m.id for m in client.models.list()]
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve(name)


def test_uploads(trained: Trained, tmp_path) -> None:
    uploads, data = trained.client.uploads, jsonl(30)
    path = tmp_path / "big.jsonl"
    path.write_bytes(data)
    done = exact(uploads.upload_file_chunked(file=path, mime_type="text/jsonl", purpose="fine-tune",
                                             part_size=len(data) // 3 + 1, md5=hashlib.md5(data).hexdigest()))
    assert done.status == "completed" and done.file and done.file.status == "processed"
    assert trained.client.files.content(done.file.id).read() == data
    up = exact(uploads.create(bytes=len(data), filename="x.jsonl", mime_type="text/jsonl", purpose="fine-tune"))
    part = exact(uploads.parts.create(up.id, data=data))
    assert part.upload_id == up.id and part.object == "upload.part"
    assert exact(uploads.complete(up.id, part_ids=[part.id])).file.bytes == len(data)
    dropped = uploads.create(bytes=len(data), filename="y.jsonl", mime_type="text/jsonl", purpose="fine-tune")
    assert exact(uploads.cancel(dropped.id)).status == "cancelled"


def test_checkpoint_permissions(trained: Trained, stack: Stack) -> None:  # noqa: F811
    perms, job = trained.client.fine_tuning.checkpoints.permissions, trained.job
    ckpt = trained.client.fine_tuning.jobs.checkpoints.list(job.id).data[0].fine_tuned_model_checkpoint
    other = stack.api.client(_strict_response_validation=True)
    project = other.fine_tuning.jobs.create(
        model=BASE, training_file=other.files.create(file=("o.jsonl", jsonl(12)), purpose="fine-tune").id
    ).organization_id  # a project id is an org id, as every job of that org shows it
    (granted,) = page(perms.create(ckpt, project_ids=[project]))
    assert granted.project_id == project and granted.object == "checkpoint.permission"
    assert [p.id for p in page(perms.list(ckpt, project_id=project))] == [granted.id]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        assert [p.id for p in exact(perms.retrieve(ckpt)).data] == [granted.id]
    assert exact(perms.delete(granted.id, fine_tuned_model_checkpoint=ckpt)).deleted
    assert page(perms.list(ckpt)) == []


def test_unsupported_methods_are_a_400_naming_the_feature(trained: Trained) -> None:
    graders = trained.client.fine_tuning.alpha.graders
    grader = {"type": "string_check", "name": "g", "input": "{{sample.output_text}}", "operation": "eq",
              "reference": "x"}
    for call in (lambda: graders.run(grader=grader, model_sample="x"), lambda: graders.validate(grader=grader)):
        with pytest.raises(openai.BadRequestError) as exc:
            call()
        assert error_of(exc.value)["code"] == "unsupported_feature" and "reinforcement" in exc.value.message
    with pytest.raises(openai.BadRequestError) as exc:
        trained.client.fine_tuning.jobs.create(model=BASE, training_file="file-x", method={"type": "reinforcement"})
    assert error_of(exc.value)["param"].startswith("method")
