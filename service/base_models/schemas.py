"""Provider base-model admin API: request bodies and response objects (`from_row`: the row's columns)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from service.edge import BoundedJson, SafeStr
from service.objects import ApiObject

# The column widths of BaseModelRow / AlignmentRow: longer would be a database error, not a 400.
ModelName = Annotated[SafeStr, Field(max_length=200)]
GpuClass = Annotated[SafeStr, Field(max_length=40)]


class RegisterBaseModel(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: ModelName
    path: Annotated[SafeStr, Field(max_length=1024)]
    aligned: bool = False
    gpu_class: GpuClass = "default"
    manifest: BoundedJson | None = None


class AlignBaseModel(BaseModel):
    """Antibody alignment stage (stage 1) on a source model; the result is registered under `name`."""

    model_config = ConfigDict(extra="forbid")
    name: ModelName
    source: ModelName = "smollm2"
    mode: Literal["antibody", "sft"] = "antibody"
    max_steps: int = Field(default=40, ge=1, le=100_000)
    batch_size: int = Field(default=8, ge=2, le=1024)
    eval_harmful: int = Field(default=100, ge=1, le=100_000)
    eval_benign: int = Field(default=50, ge=1, le=100_000)
    gpu_class: GpuClass = "default"


class BaseModelObject(ApiObject):
    """A registered base model; `manifest` is its alignment manifest (HS before/after, data, seeds) or `{}`.
    `retired_at` is when the provider retired it (it takes no new jobs, screens or alignments), null while offered."""

    name: str
    path: str  # a local Hugging Face model folder or a `store://` prefix
    aligned: bool
    gpu_class: str
    manifest: dict[str, Any]
    created_at: int
    retired_at: int | None


class BaseModelList(ApiObject):
    object: Literal["list"] = "list"
    data: list[BaseModelObject]


class BaseModelAlignment(ApiObject):
    """`base_model.alignment`: one alignment run (see `service.base_models.alignments`)."""

    id: str
    object: Literal["base_model.alignment"] = "base_model.alignment"
    name: str
    status: Literal["queued", "running", "succeeded", "failed"]
    phase: str | None
    step: int
    total_steps: int | None
    spec: dict[str, Any]
    gpu_class: str
    attempts: int
    worker_id: str | None
    created_at: int
    started_at: int | None
    finished_at: int | None
    result: dict[str, Any] | None  # the registered base model (a BaseModelObject) once succeeded
    error: str | None


class BaseModelAlignmentList(ApiObject):
    object: Literal["list"] = "list"
    data: list[BaseModelAlignment]
