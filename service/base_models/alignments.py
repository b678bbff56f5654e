"""Provider alignment runs started through the admin API: a status object for each (Antibody stage 1).

    {"id": "balign_…", "object": "base_model.alignment", "name", "status": queued|running|succeeded|failed,
     "phase", "step", "total_steps", "spec", "gpu_class", "attempts", "worker_id",
     "created_at", "started_at", "finished_at", "result": <the registered base model> | null, "error": str | null}

A worker claims and runs it (``worker/alignment/tasks.py`` → ``worker/alignment/runner.py``); ``worker/leases.py``
re-queues it if that worker dies. While one run for a name is queued or running, another for the same name is refused.
So is a run for a retired name: publishing rewrites `base-models/{name}/` in place, the weights that the fine-tuned
models of a retired base are still served on.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from service.base_models import repository
from service.base_models.service import RETIRED, check_name
from service.broker import enqueue_alignment
from service.config import Settings
from service.errors import InvalidRequest, NotFound
from service.ids import new_id, now
from service.orm import AlignmentRow

PENDING = ("queued", "running")


def start(session: Session, settings: Settings, spec: dict[str, Any], gpu_class: str) -> AlignmentRow:
    """Record a queued alignment and publish it once the transaction commits."""
    check_name(spec["name"])
    known = repository.get(session, spec["name"])
    if known is not None and known.retired_at is not None:
        raise InvalidRequest(
            f"'{known.name}' is retired, and aligning it would replace the weights its fine-tuned models are still "
            f"served on. Reinstate it first (POST /v1/admin/base_models/{known.name}/reinstate) or pick another name.",
            param="name",
            code=RETIRED,
        )
    busy = repository.alignment_in_progress(session, spec["name"], PENDING)
    if busy:
        raise InvalidRequest(
            f"An alignment of '{spec['name']}' is already {busy} in progress; wait for it or pick another name.",
            param="name",
            code="alignment_in_progress",
        )
    row = AlignmentRow(id=new_id("balign_"), name=spec["name"], spec=spec, gpu_class=gpu_class, status="queued")
    row.created_at, row.step, row.attempts = now(), 0, 0
    repository.add_alignment(session, row)
    enqueue_alignment(session, settings, row.id, gpu_class)
    return row


def get(session: Session, alignment_id: str) -> AlignmentRow:
    row = repository.get_alignment(session, alignment_id)
    if row is None:
        raise NotFound(f"No such alignment: {alignment_id}", param="id")
    return row


def list_recent(session: Session, limit: int = 100) -> list[AlignmentRow]:
    return repository.recent_alignments(session, limit)

