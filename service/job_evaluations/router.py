"""Provider (admin key) endpoints: re-run a finished job's evaluation and read the re-runs."""

from __future__ import annotations

from fastapi import APIRouter

from service.deps import AdminOrg, SessionDep, SettingsDep
from service.job_evaluations import service
from service.job_evaluations.schemas import JobEvaluation, JobEvaluationList

router = APIRouter(prefix="/admin/fine_tuning/jobs/{job_id}/evaluations", tags=["admin"])


@router.post("", status_code=202, response_model=JobEvaluation)
def evaluate_job(job_id: str, session: SessionDep, settings: SettingsDep, admin: AdminOrg):
    """Queue a re-run of the job's evaluation (HS, FA, the gate's verdict) on its adapter with today's settings;
    the job's status and fine-tuned model do not change. Poll `GET .../evaluations/{id}`."""
    return JobEvaluation.from_row(service.request(session, settings, job_id))


@router.get("", response_model=JobEvaluationList)
def list_evaluations(job_id: str, session: SessionDep, admin: AdminOrg):
    return JobEvaluationList(data=[JobEvaluation.from_row(r) for r in service.list_for_job(session, job_id)])


@router.get("/{evaluation_id}", response_model=JobEvaluation)
def retrieve_evaluation(job_id: str, evaluation_id: str, session: SessionDep, admin: AdminOrg):
    return JobEvaluation.from_row(service.get(session, job_id, evaluation_id))
