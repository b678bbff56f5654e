"""Keyset pagination shared by every list endpoint (OpenAI's `after` / `limit` / `has_more`)."""

from __future__ import annotations

from typing import Any, TypeVar

from sqlalchemy import Select
from sqlalchemy.orm import Session

from service.errors import InvalidRequest

T = TypeVar("T")


def page(
    session: Session,
    query: Select[Any],
    seq_col: Any,
    id_col: Any,
    *,
    after: str | None,
    limit: int,
    newest_first: bool = True,
) -> tuple[list[Any], bool]:
    """Rows after the object with id `after` in `seq_col` order, plus whether more remain."""
    if after:
        # Look the anchor up inside the same filtered query, so another org's id is as unknown as a made-up one.
        anchor = session.scalar(query.with_only_columns(seq_col).where(id_col == after))
        if anchor is None:
            raise InvalidRequest(
                f"No object with id '{after}' to page after.", param="after", code="invalid_value"
            )
        query = query.where(seq_col < anchor if newest_first else seq_col > anchor)
    query = query.order_by(seq_col.desc() if newest_first else seq_col.asc()).limit(limit + 1)
    rows = list(session.scalars(query))
    return rows[:limit], len(rows) > limit


def list_body(data: list[Any], has_more: bool) -> dict[str, Any]:
    first = (
        data[0]["id"]
        if data and isinstance(data[0], dict)
        else getattr(data[0], "id", None)
        if data
        else None
    )
    last = (
        data[-1]["id"]
        if data and isinstance(data[-1], dict)
        else getattr(data[-1], "id", None)
        if data
        else None
    )
    return {"object": "list", "data": data, "first_id": first, "last_id": last, "has_more": has_more}
