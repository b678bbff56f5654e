"""Which weights a `model` name may be served with (or a job may continue from, ``service/fine_tuning/parent.py``),
and which backend serves them.

Safe by construction: only a base model that jobs may use, a fine-tuned model that passed the safety evaluation
(its ``FineTunedModelRow`` exists only then, ``worker/fine_tuning/outcome.py``) and is not deleted, or a checkpoint
of a job that succeeded (the caller's own, or one its owner shared with the caller's org,
``service/checkpoint_permissions/``). A job stopped by the safety gate has no fine-tuned model, and its checkpoints
are never served either: an unevaluated checkpoint of an unsafe run is exactly what the gate keeps from customers.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.base_models import service as base_models
from service.checkpoint_permissions import service as checkpoint_permissions
from service.config import Settings
from service.errors import InvalidRequest, NotFound
from service.inference import repository
from service.orm import JobRow

SAFETY_GATE_CODE = "safety_evaluation_failed"
CHECKPOINT_MARK = ":ckpt-step-"


@dataclass(frozen=True)
class Target:
    """``base``: the base model (routes to a backend); ``adapter``: the LoRA name on the backend (the model id
    the caller used) and ``adapter_prefix`` its object-store folder, both None for a base model."""

    base: str
    adapter: str | None = None
    adapter_prefix: str | None = None


def _not_found(model: str) -> NotFound:
    return NotFound(f"The model '{model}' does not exist or you do not have access to it.", param="model",
                    code="model_not_found")


def _gated(model: str, job: JobRow) -> InvalidRequest:
    reason = (job.error or {}).get("message") or "its harmful score failed the safety evaluation"
    return InvalidRequest(f"The model '{model}' is not served: job {job.id} was stopped by the safety gate. {reason}",
                          param="model", code=SAFETY_GATE_CODE)


def _job_of(session: Session, org_id: str, model: str) -> JobRow | None:
    """The job a fine-tuned model name ends with (``ft:…:{job id}``), when the name has that shape."""
    tail = model.split(CHECKPOINT_MARK)[0].rsplit(":", 1)[-1]
    return repository.job(session, org_id, tail) if model.startswith("ft:") and tail.startswith("ftjob-") else None


def _checkpoint(session: Session, org_id: str, model: str) -> Target:
    # A grant only stands in for ownership: the safety and readiness checks below hold for grantees too.
    found = repository.checkpoint(session, org_id, model) or checkpoint_permissions.shared_with(session, org_id, model)
    if found is None:
        raise _not_found(model)
    ckpt, job = found
    if (job.error or {}).get("code") == SAFETY_GATE_CODE:
        raise _gated(model, job)
    if job.status != "succeeded":
        raise InvalidRequest(
            f"The model '{model}' is a checkpoint of job {job.id}, which is {job.status}: checkpoints are served "
            "once their job has succeeded (passed the safety evaluation).", param="model", code="model_not_ready")
    return Target(base=job.model, adapter=model, adapter_prefix=ckpt.object_prefix.rstrip("/") + "/adapter/")


def resolve(session: Session, settings: Settings, principal: Principal, model: str) -> Target:
    """The servable weights for ``model``, or a 4xx naming ``model`` with the reason."""
    if base_models.usable(session, settings, model) is not None:
        return Target(base=model)
    # Retired: not served as itself any more; the models fine-tuned on it still are (below), on the same weights.
    base_models.refuse_retired(session, settings, model, "chat completions of its own", NotFound)
    if CHECKPOINT_MARK in model:
        return _checkpoint(session, principal.org_id, model)
    tuned = repository.tuned_model(session, principal.org_id, model)
    if tuned is not None and tuned.deleted_at is None:
        return Target(base=tuned.base_model, adapter=model, adapter_prefix=tuned.adapter_prefix)
    if tuned is not None:
        raise NotFound(f"The model '{model}' was deleted and is no longer served.", param="model",
                       code="model_deleted")
    job = _job_of(session, principal.org_id, model)
    if job is not None and (job.error or {}).get("code") == SAFETY_GATE_CODE:
        raise _gated(model, job)
    raise _not_found(model)


def backend_url(settings: Settings, base: str) -> str:
    """The backend serving ``base``; a base no backend serves is the caller's 400 (`servable: false` in
    /v1/models), not a 5xx: retrying cannot help until the provider configures one."""
    url = settings.inference_backends.get(base) or settings.inference_backends.get("*")
    if not url:
        raise InvalidRequest(f"The model's base '{base}' is not served for chat completions here (no inference "
                             "backend; GET /v1/models marks what can be called).", param="model",
                             code="model_not_servable")
    return url.rstrip("/")
