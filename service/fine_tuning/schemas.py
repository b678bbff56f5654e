"""Fine-tuning request bodies, mirroring openai-python v3's params (the response objects are in `objects.py`)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic_core.core_schema import ValidatorFunctionWrapHandler

from service.edge import BoundedJson, SafeStr

Auto = Literal["auto"]
# Loose bounds that keep any value hashable and storable; hyperparameters.resolve enforces the real ranges.
SaneInt = Annotated[StrictInt, Field(ge=-(2**31), le=2**31 - 1)]
FileId = Annotated[SafeStr, Field(min_length=1, max_length=64)]
Name = Annotated[SafeStr, Field(max_length=256)]

_EXPECTED = {
    "batch_size": "'auto' or an integer between 2 and 256",
    "learning_rate_multiplier": "'auto' or a number between 0.000001 and 10",
    "n_epochs": "'auto' or an integer between 1 and 50",
}


class Hyperparameters(BaseModel):
    model_config = ConfigDict(extra="forbid")
    batch_size: Auto | SaneInt | None = None
    learning_rate_multiplier: Auto | Annotated[StrictFloat, Field(allow_inf_nan=False)] | None = None
    n_epochs: Auto | SaneInt | None = None

    @field_validator("batch_size", "learning_rate_multiplier", "n_epochs", mode="wrap")
    @classmethod
    def _one_clear_error(cls, value: Any, handler: ValidatorFunctionWrapHandler, info: ValidationInfo) -> Any:
        # Strict: `true` and `"3"` are refused rather than read as 1 and 3. One error at the field itself instead
        # of one per union member, so `param` names the field.
        try:
            return handler(value)
        except ValidationError:
            raise ValueError(f"must be {_EXPECTED[info.field_name or '']}") from None


class SupervisedMethod(BaseModel):
    model_config = ConfigDict(extra="forbid")
    hyperparameters: Hyperparameters | None = None


class Method(BaseModel):
    """dpo and reinforcement are accepted in shape only, so that service.create can say they are not offered."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["supervised", "dpo", "reinforcement"]
    supervised: SupervisedMethod | None = None
    dpo: BoundedJson | None = None
    reinforcement: BoundedJson | None = None


class Wandb(BaseModel):
    model_config = ConfigDict(extra="forbid")
    project: Name
    name: Name | None = None
    entity: Name | None = None
    tags: Annotated[list[Name], Field(max_length=50)] | None = None


class Integration(BaseModel):
    """OpenAI's shape, validated so a bad one is a 400; service.create accepts it when the provider set up W&B."""

    model_config = ConfigDict(extra="forbid")
    type: Literal["wandb"]
    wandb: Wandb


class JobCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    # A fine-tuned model or checkpoint name (JobRow.parent_model) is longer than a base model's.
    model: Annotated[SafeStr, Field(min_length=1, max_length=300)]
    training_file: FileId
    hyperparameters: Hyperparameters | None = None
    integrations: Annotated[list[Integration], Field(max_length=16)] | None = None
    metadata: dict[str, str] | None = None
    method: Method | None = None
    seed: Annotated[StrictInt, Field(ge=0, le=2**31 - 1)] | None = None
    suffix: str | None = Field(default=None, max_length=64)
    validation_file: FileId | None = None

    @field_validator("metadata")
    @classmethod
    def _metadata_limits(cls, v: dict[str, str] | None) -> dict[str, str] | None:
        if v is None:
            return v
        if len(v) > 16:
            raise ValueError("at most 16 key-value pairs")
        for key, value in v.items():
            if "\x00" in key or "\x00" in value:
                raise ValueError("keys and values must not contain NUL (\\u0000) characters")
            if len(key) > 64:
                raise ValueError(f"key '{key[:20]}…' is longer than 64 characters")
            if len(value) > 512:
                raise ValueError(f"value of '{key}' is longer than 512 characters")
        return v

    @field_validator("suffix")
    @classmethod
    def _suffix_chars(cls, v: str | None) -> str | None:
        if v is not None and not all(c.isalnum() or c in "-_" for c in v):
            raise ValueError("may contain only letters, digits, '-' and '_'")
        return v or None
