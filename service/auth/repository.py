"""All SQL for organizations and API keys."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from service.ids import new_id, now
from service.orm import ApiKeyRow, OrgRow


def get_key(session: Session, key_hash: str) -> tuple[ApiKeyRow, OrgRow] | None:
    row = session.execute(
        select(ApiKeyRow, OrgRow)
        .join(OrgRow, OrgRow.id == ApiKeyRow.org_id)
        .where(ApiKeyRow.key_hash == key_hash, ApiKeyRow.revoked_at.is_(None))
    ).first()
    return (row[0], row[1]) if row else None


def get_or_create_org(session: Session, name: str) -> OrgRow:
    org = session.scalar(select(OrgRow).where(OrgRow.name == name))
    if org is None:
        org = OrgRow(id=new_id("org-"), name=name, created_at=now())
        session.add(org)
        session.flush()
    return org


def add_key(session: Session, org: OrgRow, key_hash: str, prefix: str, is_admin: bool) -> ApiKeyRow:
    row = ApiKeyRow(key_hash=key_hash, org_id=org.id, prefix=prefix, is_admin=is_admin, created_at=now())
    session.add(row)
    return row


def org_name(session: Session, org_id: str) -> str | None:
    org = session.get(OrgRow, org_id)
    return org.name if org else None
