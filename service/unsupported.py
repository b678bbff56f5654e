"""Routes of OpenAI's fine-tuning surface this service does not offer: a 400 naming the feature, not a bare 404.

A customer's script that calls one of these learns why from the error (the README's "Moving from OpenAI" table
lists the same). They are left out of the OpenAPI document: they are OpenAI's routes, not part of this API.
"""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import CurrentOrg
from service.errors import InvalidRequest

router = APIRouter(include_in_schema=False)

GRADERS = (
    "Graders (`fine_tuning.alpha.graders`) belong to reinforcement fine-tuning, which this service does not offer: "
    "jobs are supervised fine-tuning with Antibody's safety weighting (method.type 'supervised')."
)


@router.post("/fine_tuning/alpha/graders/run")
@router.post("/fine_tuning/alpha/graders/validate")
def graders(_: CurrentOrg) -> None:
    raise InvalidRequest(GRADERS, param=None, code="unsupported_feature")
