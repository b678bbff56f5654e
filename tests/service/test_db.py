"""JSON columns read back what was written, NaN included (orjson decodes them; the stdlib takes what it refuses)."""

from __future__ import annotations

import math
from pathlib import Path

from service.config import Settings
from service.db import session_scope
from service.migrate import upgrade
from service.orm import BaseModelRow


def test_json_columns_round_trip_nested_values_and_a_nan(tmp_path: Path) -> None:
    settings = Settings(home=tmp_path)
    upgrade(settings.database_url)
    manifest = {"name": "ünïcode ✓", "nested": [1, 2.5, None, True, {"deep": "x"}]}
    with session_scope(settings.database_url) as session:
        session.add(BaseModelRow(name="a", path="/m", aligned=True, manifest=manifest, created_at=1))
        session.add(BaseModelRow(name="b", path="/m", aligned=True, manifest={"loss": float("nan")}, created_at=1))
    with session_scope(settings.database_url) as session:
        assert session.get(BaseModelRow, "a").manifest == manifest
        assert math.isnan(session.get(BaseModelRow, "b").manifest["loss"])  # the stdlib writes NaN; orjson refuses it
