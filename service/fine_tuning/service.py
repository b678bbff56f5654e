"""Fine-tuning jobs: creation (validation, "auto" resolution, idempotency), listing, control, events, checkpoints."""

from __future__ import annotations

import hashlib
import random

import orjson
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.base_models import service as base_models
from service.broker import enqueue_job
from service.config import Settings
from service.errors import InvalidRequest, NotFound
from service.files import repository as files
from service.fine_tuning import hyperparameters, parent, repository
from service.fine_tuning.schemas import JobCreate
from service.ids import new_id, now
from service.orm import FileRow, JobRow
from service.quotas import service as quotas
from service.storage import ObjectNotFound, ObjectStore
from service.webhooks import delivery

MAX_IDEMPOTENCY_KEY = 255  # JobRow.idempotency_key is String(255)
MAX_FILTER_KEY, MAX_FILTER_VALUE, MAX_FILTERS = 64, 512, 16  # as for metadata itself (JobCreate)


class InvalidState(InvalidRequest):
    code = "invalid_job_state"


def _training_file(session: Session, principal: Principal, file_id: str, param: str) -> FileRow:
    # The message names the field too: a body with two file ids is otherwise ambiguous to a reader of the log.
    row = files.get(session, principal.org_id, file_id)
    if row is None:
        raise InvalidRequest(f"{param}: file '{file_id}' does not exist.", param=param, code="invalid_file")
    if row.purpose != "fine-tune":
        raise InvalidRequest(f"{param}: file '{file_id}' has purpose '{row.purpose}', not 'fine-tune'.", param=param)
    if row.status != "processed":
        raise InvalidRequest(
            f"{param}: file '{file_id}' is not ready ({row.status}): {row.status_details or ''}".strip(),
            param=param,
            code="invalid_file",
        )
    return row


def _validate(
    session: Session, settings: Settings, principal: Principal, body: JobCreate
) -> tuple[parent.StartingPoint, int]:
    """Check everything checkable at create time; returns (what training starts from, n training examples)."""
    if body.method is not None and body.method.type != "supervised":
        raise InvalidRequest(
            f"Method '{body.method.type}' is not offered: this service runs only supervised fine-tuning, with "
            "Antibody's safety weighting always on.",
            param="method.type",
            code="unsupported_method",
        )
    if body.integrations and not settings.wandb_configured:
        raise InvalidRequest(
            "Integrations of type 'wandb' are unavailable: the provider has not configured W&B (Weights & Biases) "
            "for this service.",
            param="integrations",
        )
    if body.integrations and len(body.integrations) > 1:
        # One W&B run per job: its run id is the job id, which is how a resumed job continues the same run
        raise InvalidRequest("At most one wandb integration per job.", param="integrations")
    start = parent.resolve(session, settings, principal, body.model)
    training = _training_file(session, principal, body.training_file, "training_file")
    if body.validation_file == body.training_file:
        raise InvalidRequest(
            "validation_file must differ from training_file: metrics on the training data itself would hide "
            "overfitting.",
            param="validation_file",
        )
    if body.validation_file:
        _training_file(session, principal, body.validation_file, "validation_file")
    return start, training.examples or 0


def _request_hash(body: JobCreate) -> str:
    return hashlib.sha256(orjson.dumps(body.model_dump(mode="json"), option=orjson.OPT_SORT_KEYS)).hexdigest()


def create(
    session: Session, settings: Settings, principal: Principal, body: JobCreate, idempotency_key: str | None
) -> JobRow:
    if idempotency_key is not None and len(idempotency_key) > MAX_IDEMPOTENCY_KEY:
        raise InvalidRequest(
            f"Idempotency-Key is longer than {MAX_IDEMPOTENCY_KEY} characters.", param="Idempotency-Key"
        )
    digest = _request_hash(body)  # safe on any body JobCreate accepts: its integers and nesting are bounded
    if idempotency_key:
        existing = repository.get_by_idempotency_key(session, principal.org_id, idempotency_key)
        if existing is not None:
            return _replay(existing, digest)
    quotas.check_queued(session, settings, principal.org_id)  # after the replay: a retried create is never refused
    start, n_examples = _validate(session, settings, principal, body)
    job = JobRow(
        id=new_id("ftjob-"),
        org_id=principal.org_id,
        model=start.base.name,
        parent_model=start.parent_model,
        parent_adapter_prefix=start.adapter_prefix,
        training_file=body.training_file,
        validation_file=body.validation_file,
        status="validating_files",
        hyperparameters=hyperparameters.resolve(body, n_examples),
        method={"type": "supervised"},
        suffix=body.suffix,
        seed=body.seed if body.seed is not None else random.randrange(2**31),
        job_metadata=body.metadata,
        integrations=[i.model_dump(mode="json") for i in body.integrations] if body.integrations else None,
        created_at=now(),
        idempotency_key=idempotency_key,
        request_hash=digest,
    )
    if idempotency_key is None:
        repository.add(session, job)  # no key to race on, so no savepoint (two round trips on PostgreSQL)
    else:
        try:
            with session.begin_nested():
                repository.add(session, job)
        except IntegrityError:
            # A concurrent request with the same Idempotency-Key won the race.
            existing = repository.get_by_idempotency_key(session, principal.org_id, idempotency_key)
            if existing is None:
                raise
            return _replay(existing, digest)
    repository.add_event(session, job.id, f"Created fine-tuning job: {job.id}")
    repository.add_event(session, job.id, f"Validating training file: {job.training_file}")
    enqueue_job(session, settings, job.id, start.base.gpu_class)
    return job


def _replay(existing: JobRow, digest: str) -> JobRow:
    if existing.request_hash != digest:
        raise InvalidRequest(
            "This Idempotency-Key was already used with a different request body.",
            param="Idempotency-Key",
            code="idempotency_key_reused",
        )
    return existing


def get(session: Session, principal: Principal, job_id: str) -> JobRow:
    row = repository.get(session, job_id, org_id=principal.org_id)
    if row is None:
        raise NotFound(f"Could not find fine-tuning job {job_id}.", param="fine_tuning_job_id")
    return row


def _state_error(job: JobRow, action: str) -> InvalidState:
    return InvalidState(f"Cannot {action} job {job.id}: it is {job.status}.", param="fine_tuning_job_id")


def cancel(session: Session, settings: Settings, principal: Principal, job_id: str) -> JobRow:
    job = get(session, principal, job_id)
    if repository.transition(session, job.id, ("validating_files", "queued", "paused"), "cancelled", finished_at=now()):
        repository.add_event(session, job.id, "Fine-tuning job cancelled")
        delivery.notify_after_commit(session, settings, job.id, "cancelled")
    elif not repository.request_control(session, job.id, "cancel", ("running",)):
        raise _state_error(job, "cancel")
    else:
        repository.add_event(session, job.id, "Cancellation requested; stopping at the next training step")
    session.refresh(job)
    return job


def pause(session: Session, principal: Principal, job_id: str) -> JobRow:
    job = get(session, principal, job_id)
    if repository.transition(session, job.id, ("validating_files", "queued"), "paused"):
        repository.add_event(session, job.id, "Fine-tuning job paused before it started")
    elif not repository.request_control(session, job.id, "pause", ("running",)):
        raise _state_error(job, "pause")
    else:
        repository.add_event(session, job.id, "Pause requested; checkpointing at the next training step")
    session.refresh(job)
    return job


def resume(session: Session, settings: Settings, principal: Principal, job_id: str) -> JobRow:
    job = get(session, principal, job_id)
    if not repository.transition(session, job.id, ("paused",), "queued", control=None):
        raise _state_error(job, "resume")
    repository.add_event(session, job.id, "Fine-tuning job resumed")
    base = base_models.servable(session, settings, job.model)  # a job started before its base was retired resumes
    enqueue_job(session, settings, job.id, base.gpu_class if base else "default")
    session.refresh(job)
    return job


def _check_metadata_filter(metadata: dict[str, str]) -> None:
    """A filter no stored metadata could match is a mistake worth a 400, not an empty page."""
    if len(metadata) > MAX_FILTERS:
        raise InvalidRequest(f"At most {MAX_FILTERS} metadata filters.", param="metadata")
    for key, value in metadata.items():
        if len(key) > MAX_FILTER_KEY or len(value) > MAX_FILTER_VALUE:
            raise InvalidRequest(
                f"metadata[key]=value filters take keys of at most {MAX_FILTER_KEY} characters and values of at "
                f"most {MAX_FILTER_VALUE}.",
                param="metadata",
            )


def list_jobs(
    session: Session,
    principal: Principal,
    *,
    after: str | None,
    limit: int,
    metadata: dict[str, str],
    all_orgs: bool,
) -> tuple[list[JobRow], bool]:
    _check_metadata_filter(metadata)
    org = None if all_orgs else principal.org_id
    return repository.list_page(session, org, after=after, limit=limit, metadata=metadata)


def events(session: Session, principal: Principal, job_id: str, *, after: str | None, limit: int):  # type: ignore[no-untyped-def]
    job = get(session, principal, job_id)
    return repository.events_page(session, job.id, after=after, limit=limit)


def checkpoints(session: Session, principal: Principal, job_id: str, *, after: str | None, limit: int):  # type: ignore[no-untyped-def]
    job = get(session, principal, job_id)
    return repository.checkpoints_page(session, job.id, after=after, limit=limit)


def adapter_files(session: Session, store: ObjectStore, principal: Principal, job_id: str) -> list[str]:
    """Object keys of the job's trained adapter (PEFT safetensors); 400 until the job has succeeded."""
    job = get(session, principal, job_id)
    if job.status != "succeeded":
        raise InvalidState(f"Job {job.id} has no adapter: it is {job.status}.", param="fine_tuning_job_id")
    return store.list(f"jobs/{job.id}/adapter/")


def report_bytes(session: Session, store: ObjectStore, principal: Principal, job_id: str, name: str) -> bytes:
    """The job's evaluation report (`report.json` or `report.html`); 400 until the job has been evaluated."""
    job = get(session, principal, job_id)
    try:
        return store.get_bytes(f"jobs/{job.id}/{name}")
    except ObjectNotFound:
        raise InvalidState(
            f"Job {job.id} has no evaluation report yet (it is {job.status}).", param="fine_tuning_job_id"
        ) from None
