"""The base of every JSON response object: one `from_row` conversion per object, every field always documented.

`from_row` reads the ORM row's attributes of the same names (`from_attributes`); an object whose fields are named
otherwise than its row's columns overrides it, so each object still has exactly one row→object conversion. Every
field is present in every response (nullable ones as null), so the OpenAPI document marks them all required
(`json_schema_serialization_defaults_required`), defaulted `object` tags included.
"""

from __future__ import annotations

from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class ApiObject(BaseModel):
    model_config = ConfigDict(from_attributes=True, json_schema_serialization_defaults_required=True)

    @classmethod
    def from_row(cls, row: Any) -> Self:
        return cls.model_validate(row)
