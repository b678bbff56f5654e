"""`POST /v1/chat/completions`: OpenAI's chat completions on base models, fine-tuned models and checkpoints.

Async on purpose: a completion waits seconds on its backend, and a thread held per waiting request is how the
API hung before (issue 14's event streams). The DB work (auth, resolving `model`) is short and runs in the
threadpool as every sync dependency does.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, StreamingResponse
from starlette.concurrency import run_in_threadpool

from service.deps import CurrentOrg, SessionDep, SettingsDep
from service.errors import InvalidRequest
from service.inference import service
from service.inference.backends import BackendError, Backends
from service.inference.objects import ChatCompletion
from service.inference.schemas import ChatCompletionCreate, backend_body, unsupported

router = APIRouter(tags=["chat"])


@router.post(
    "/chat/completions",
    response_model=ChatCompletion,
    responses={200: {"content": {"text/event-stream": {"schema": {"type": "string"}}},
                     "description": "A chat.completion, or with stream=true chat.completion.chunk events ending "
                                    "with `data: [DONE]`"}},
)
async def create_chat_completion(
    body: ChatCompletionCreate, request: Request, session: SessionDep, settings: SettingsDep, org: CurrentOrg
) -> Any:
    refused = unsupported(body)
    if refused is not None:
        raise InvalidRequest(refused[1], param=refused[0], code="unsupported_parameter")
    target = await run_in_threadpool(service.resolve, session, settings, org, body.model)
    await run_in_threadpool(session.commit)  # end the transaction now: no DB connection held while generating
    url = service.backend_url(settings, target.base)
    backends: Backends = request.app.state.inference
    resp = await backends.open(url, target, backend_body(body, target.adapter or target.base))
    if body.stream:
        return StreamingResponse(backends.relay(resp), media_type="text/event-stream",
                                 headers={"cache-control": "no-cache"})
    try:
        payload = await resp.aread()
    finally:
        await resp.aclose()
    try:
        completion = ChatCompletion.model_validate_json(payload)
    except ValueError as exc:
        raise BackendError(f"inference backend sent a malformed chat.completion: {str(exc)[:300]}") from exc
    return JSONResponse(content=completion.model_dump(mode="json"))
