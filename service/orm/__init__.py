"""Database tables (SQLAlchemy ORM). Named `*Row` so they can't be mixed up with the Models API or pydantic schemas."""

from service.orm.base import NAMING, Base, Seq
from service.orm.runs import (
    AlignmentRow,
    EvaluationRow,
    FileScreenRow,
    WorkerRow,
)
from service.orm.tables import (
    ApiKeyRow,
    BaseModelRow,
    CheckpointPermissionRow,
    CheckpointRow,
    DashboardSessionRow,
    FileRow,
    FineTunedModelRow,
    JobEventRow,
    JobRow,
    OrgQuotaRow,
    OrgRow,
    QuotaUsageRow,
    UploadPartRow,
    UploadRow,
    WebhookEndpointRow,
)

__all__ = [
    "AlignmentRow",
    "ApiKeyRow",
    "Base",
    "BaseModelRow",
    "CheckpointPermissionRow",
    "CheckpointRow",
    "DashboardSessionRow",
    "EvaluationRow",
    "FileRow",
    "FileScreenRow",
    "FineTunedModelRow",
    "JobEventRow",
    "JobRow",
    "NAMING",
    "OrgQuotaRow",
    "OrgRow",
    "QuotaUsageRow",
    "Seq",
    "UploadPartRow",
    "UploadRow",
    "WebhookEndpointRow",
    "WorkerRow",
]
