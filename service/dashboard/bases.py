"""Registering a base model from the dashboard's form: the admin API's checks (service/base_models/), except that the
form never overwrites a registered name, whose manifest (HS before and after alignment) it would otherwise drop."""

from __future__ import annotations

from pydantic import ValidationError
from sqlalchemy.orm import Session

from service.base_models import repository
from service.base_models import service as base_models
from service.base_models.schemas import RegisterBaseModel
from service.errors import InvalidRequest
from service.storage import ObjectStore


def register(session: Session, store: ObjectStore, *, name: str, path: str, gpu_class: str, aligned: bool) -> None:
    try:
        body = RegisterBaseModel(name=name.strip(), path=path.strip(), gpu_class=gpu_class.strip() or "default",
                                 aligned=aligned)  # fmt: skip
    except ValidationError as exc:
        fields = ", ".join(str(e["loc"][0]) for e in exc.errors())
        raise InvalidRequest(f"Not registered: check {fields}.") from None
    if repository.get(session, body.name) is not None:
        raise InvalidRequest(
            f"A base model named '{body.name}' is registered already; pick another name "
            "(POST /v1/admin/base_models replaces one, manifest included)."
        )
    base_models.register(
        session, store, name=body.name, path=body.path, aligned=body.aligned, gpu_class=body.gpu_class
    )
