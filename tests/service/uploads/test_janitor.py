"""The uploads' share of the janitor pass: expired uploads lose their parts, and part bytes without a live row go
once they are older than the age threshold (never sooner: their row may be about to commit)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from service.config import Settings
from service.db import session_scope
from service.files import janitor
from service.ids import new_id, now
from service.migrate import upgrade
from service.orm import OrgRow, UploadPartRow, UploadRow
from service.storage import ObjectStore

HOURS_LATER = 2 * 3600  # past the default 1 h age threshold


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    settings = Settings(home=tmp_path / "home")  # SQLite; the store under test comes from `object_store`
    settings.home.mkdir()
    upgrade(settings.database_url)
    return settings


def _upload(settings: Settings, store: ObjectStore, status: str, expires_at: int, parts: int = 2) -> str:
    """An upload row in ``status`` with ``parts`` stored parts; returns its id."""
    upload_id = new_id("upload_")
    with session_scope(settings.database_url) as session:
        org = OrgRow(id=new_id("org-"), name=new_id("org-"), created_at=now())
        session.add(org)
        session.flush()
        session.add(
            UploadRow(
                id=upload_id,
                org_id=org.id,
                filename="t.jsonl",
                purpose="fine-tune",
                bytes=parts,
                mime_type="text/jsonl",
                status=status,
                created_at=now(),
                expires_at=expires_at,
            )  # fmt: skip
        )
        session.flush()
        for _ in range(parts):
            part_id = new_id("part_")
            key = f"uploads/{upload_id}/{part_id}"
            store.put_bytes(key, b"x")
            session.add(UploadPartRow(id=part_id, upload_id=upload_id, bytes=1, object_key=key, created_at=now()))
    return upload_id


def test_expired_uploads_lose_their_parts_and_live_ones_keep_theirs(
    object_store: ObjectStore, settings: Settings
) -> None:
    live = _upload(settings, object_store, "pending", now() + 3600)
    due = _upload(settings, object_store, "pending", now() + 1800)
    ended = _upload(settings, object_store, "cancelled", now() + 3600)  # a part stored as the upload was cancelled

    swept = janitor.sweep(settings, object_store)
    assert (swept.expired_uploads, swept.upload_parts) == (0, 2)
    assert object_store.list(f"uploads/{ended}/") == []
    swept = janitor.sweep(settings, object_store, at=now() + 1800)
    assert (swept.expired_uploads, swept.upload_parts) == (1, 2)
    assert object_store.list(f"uploads/{due}/") == []
    assert len(object_store.list(f"uploads/{live}/")) == 2
    with session_scope(settings.database_url) as session:
        assert session.query(UploadRow.status).filter_by(id=due).scalar() == "expired"


def test_part_bytes_without_a_row_go_once_old(object_store: ObjectStore, settings: Settings) -> None:
    live = _upload(settings, object_store, "pending", now() + 3 * HOURS_LATER, parts=1)
    orphan = f"uploads/{live}/part_norow"  # stored, then its process died before the row committed
    foreign = "uploads/README"  # not a part's key: not ours
    for key in (orphan, foreign):
        object_store.put_bytes(key, b"x")

    assert janitor.sweep(settings, object_store).upload_parts == 0  # too young
    assert janitor.sweep(settings, object_store, at=time.time() + HOURS_LATER).upload_parts == 1
    assert orphan not in object_store.list("uploads/") and foreign in object_store.list("uploads/")
    assert len(object_store.list(f"uploads/{live}/")) == 1
