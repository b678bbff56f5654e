"""Where a job's training starts: a pre-aligned base model, or (OpenAI's continued fine-tuning) a fine-tuned model
or checkpoint on the base it was trained from.

A fine-tuned `model` resolves exactly as for serving (``service/inference/service.py``): the caller's own model,
which exists only once it passed the safety gate, not deleted; or a checkpoint of a succeeded job, the caller's
own or one shared with the caller's org. Serving's refusals become 400s naming `model`; a name another org has not
shared reads like one that does not exist. The base must still be one customers may fine-tune: a base the provider
retired is refused with `model_retired`, whether named directly or as the base of a fine-tuned `model`.

Access is decided here, once. The job keeps the adapter's object prefix and the worker fetches it from there on
each attempt without asking again, so revoking the grant (or deleting the parent model) while the job is queued or
running does not take its starting weights away: neither removes the stored objects. What the revocation stops is
new jobs and serving the checkpoint.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from service.auth.service import Principal
from service.base_models import service as base_models
from service.config import Settings
from service.errors import AppError, InvalidRequest
from service.inference import service as serving
from service.orm import BaseModelRow


@dataclass(frozen=True)
class StartingPoint:
    """``parent_model`` (the name the caller passed) and ``adapter_prefix`` are None for a base model."""

    base: BaseModelRow
    parent_model: str | None = None
    adapter_prefix: str | None = None


JOBS = "new fine-tuning jobs"  # what a retired base refuses here


def _unavailable(message: str) -> InvalidRequest:
    return InvalidRequest(message, param="model", code="model_not_available")


def resolve(session: Session, settings: Settings, principal: Principal, model: str) -> StartingPoint:
    """What a job created with ``model`` trains from, or a 400 naming ``model``."""
    base = base_models.usable(session, settings, model)
    if base is not None:
        return StartingPoint(base)
    base_models.refuse_retired(session, settings, model, JOBS)
    if not model.startswith("ft:"):
        raise _unavailable(
            f"Model '{model}' is not available for fine-tuning. Use one of the provider's pre-aligned base models "
            "listed by GET /v1/models, or one of your fine-tuned models or checkpoints."
        )
    try:
        target = serving.resolve(session, settings, principal, model)
    except AppError as refused:  # a missing model is serving's 404; here it is a bad parameter like the others
        raise InvalidRequest(refused.message, param="model", code=refused.code) from None
    base = base_models.usable(session, settings, target.base)
    if base is None:
        lead = f"The model '{model}' was trained on '{target.base}'. "
        base_models.refuse_retired(session, settings, target.base, JOBS, lead=lead)
    if base is None or target.adapter_prefix is None:
        raise _unavailable(
            f"The model '{model}' was trained on '{target.base}', which is no longer available for fine-tuning."
        )
    return StartingPoint(base, model, target.adapter_prefix)
