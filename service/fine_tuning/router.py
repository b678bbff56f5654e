"""Fine-tuning jobs API routes (plus the admin all-orgs listing)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import HTMLResponse, Response, StreamingResponse

from service.deps import AdminOrg, CurrentOrg, SessionDep, SettingsDep, StoreDep
from service.fine_tuning import event_stream, service, streams
from service.fine_tuning.objects import (
    CheckpointList,
    EventList,
    FineTuningJob,
    FineTuningJobCheckpoint,
    FineTuningJobEvent,
    JobList,
)
from service.fine_tuning.report_schema import EvalReport, JobAttenuation
from service.fine_tuning.schemas import JobCreate
from service.pagination import list_body

router = APIRouter(prefix="/fine_tuning/jobs", tags=["fine-tuning"])
admin_router = APIRouter(prefix="/admin/fine_tuning/jobs", tags=["admin"])

Limit = Annotated[int, Query(ge=1, le=100)]
# One server-sent event of `?stream=true` (OpenAPI 3.1 reads an event stream's schema as each event's).
SSE_EVENT = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "id": {"type": "string", "description": "the event's id, for Last-Event-ID"},
        "data": {"type": "string", "description": "a fine_tuning.job.event object as JSON; `[DONE]` last"},
    },
}


def _metadata_filter(request: Request) -> dict[str, str]:
    return {k[9:-1]: v for k, v in request.query_params.items() if k.startswith("metadata[") and k.endswith("]")}


@router.post("", response_model=FineTuningJob)
def create_job(
    body: JobCreate,
    session: SessionDep,
    settings: SettingsDep,
    org: CurrentOrg,
    idempotency_key: Annotated[str | None, Header()] = None,
):
    return FineTuningJob.from_row(service.create(session, settings, org, body, idempotency_key))


@router.get("", response_model=JobList)
def list_jobs(request: Request, session: SessionDep, org: CurrentOrg, after: str | None = None, limit: Limit = 20):
    rows, more = service.list_jobs(
        session, org, after=after, limit=limit, metadata=_metadata_filter(request), all_orgs=False
    )
    return list_body([FineTuningJob.from_row(r) for r in rows], more)


@router.get("/{job_id}", response_model=FineTuningJob)
def retrieve_job(job_id: str, session: SessionDep, org: CurrentOrg):
    return FineTuningJob.from_row(service.get(session, org, job_id))


@router.post("/{job_id}/cancel", response_model=FineTuningJob)
def cancel_job(job_id: str, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return FineTuningJob.from_row(service.cancel(session, settings, org, job_id))


@router.post("/{job_id}/pause", response_model=FineTuningJob)
def pause_job(job_id: str, session: SessionDep, org: CurrentOrg):
    return FineTuningJob.from_row(service.pause(session, org, job_id))


@router.post("/{job_id}/resume", response_model=FineTuningJob)
def resume_job(job_id: str, session: SessionDep, settings: SettingsDep, org: CurrentOrg):
    return FineTuningJob.from_row(service.resume(session, settings, org, job_id))


@router.get(
    "/{job_id}/events",
    response_model=EventList,
    responses={200: {"content": {"text/event-stream": {"schema": SSE_EVENT}}}},
)
def list_events(
    job_id: str,
    request: Request,
    session: SessionDep,
    org: CurrentOrg,
    after: str | None = None,
    limit: Limit = 20,
    stream: bool = False,
    last_event_id: Annotated[str | None, Header()] = None,
):
    if stream:  # additive: server-sent events, oldest first, until the job ends (429 past the open-stream bounds)
        job = service.get(session, org, job_id)
        return event_stream.open_stream(request.app.state.stream_hub, org.org_id, job.id, last_event_id)
    rows, more = service.events(session, org, job_id, after=after, limit=limit)
    return list_body([FineTuningJobEvent.from_row(r) for r in rows], more)


@router.get(
    "/{job_id}/adapter",
    response_class=StreamingResponse,
    responses={200: {"content": {"application/gzip": {"schema": {"type": "string", "format": "binary"}}}}},
)
def download_adapter(job_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    """Additive: the trained LoRA adapter (PEFT safetensors) as `adapter.tar.gz`."""
    keys = service.adapter_files(session, store, org, job_id)
    return StreamingResponse(
        streams.adapter_tarball(store, keys, f"jobs/{job_id}/adapter/"),
        media_type="application/gzip",
        headers={"Content-Disposition": f'attachment; filename="{job_id}-adapter.tar.gz"'},
    )


@router.get("/{job_id}/checkpoints", response_model=CheckpointList)
def list_checkpoints(job_id: str, session: SessionDep, org: CurrentOrg, after: str | None = None, limit: Limit = 10):
    rows, more = service.checkpoints(session, org, job_id, after=after, limit=limit)
    return list_body([FineTuningJobCheckpoint.from_row(r) for r in rows], more)


@router.get(
    "/{job_id}/report",
    responses={200: {"model": EvalReport, "description": "The report as the worker wrote it (`report.json`)"}},
)
def job_report(job_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    """Additive: the evaluation report (HS and FA vs the base model, protocol, attenuation summary)."""
    return Response(service.report_bytes(session, store, org, job_id, "report.json"), media_type="application/json")


@router.get(
    "/{job_id}/report.html",
    response_class=HTMLResponse,
    responses={200: {"content": {"text/html": {"schema": {"type": "string"}}}}},
)
def job_report_html(job_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    return Response(service.report_bytes(session, store, org, job_id, "report.html"), media_type="text/html")


@router.get("/{job_id}/attenuation", response_model=JobAttenuation, response_model_exclude_unset=True)
def job_attenuation(job_id: str, session: SessionDep, store: StoreDep, org: CurrentOrg):
    """Additive: which training lines Antibody down-weighted (from the report), most attenuated first."""
    report = json.loads(service.report_bytes(session, store, org, job_id, "report.json"))
    return JobAttenuation.of_report(job_id, report)


@admin_router.get("", response_model=JobList)
def list_all_jobs(request: Request, session: SessionDep, admin: AdminOrg, after: str | None = None, limit: Limit = 20):
    rows, more = service.list_jobs(
        session, admin, after=after, limit=limit, metadata=_metadata_filter(request), all_orgs=True
    )
    return list_body([FineTuningJob.from_row(r) for r in rows], more)
