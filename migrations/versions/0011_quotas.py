"""per-org quotas: overrides and embedded counters; a job's last claim time for fair scheduling

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 17:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_at", sa.Double(), nullable=True))
        batch_op.create_index("ix_fine_tuning_jobs_org_claimed", ["org_id", "claimed_at"], unique=False)
    op.create_table(
        "org_quotas",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("running_jobs", sa.Integer(), nullable=True),
        sa.Column("queued_jobs", sa.Integer(), nullable=True),
        sa.Column("upload_bytes_per_day", sa.BigInteger(), nullable=True),
        sa.Column("requests_per_minute", sa.Integer(), nullable=True),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["org_id"], ["organizations.id"], name="fk_org_quotas_org_id_organizations", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("org_id", name="pk_org_quotas"),
    )
    op.create_table(
        "quota_usage",
        sa.Column("org_id", sa.String(length=40), nullable=False),
        sa.Column("counter", sa.String(length=40), nullable=False),
        sa.Column("window_start", sa.BigInteger(), nullable=False),
        sa.Column("value", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("org_id", "counter", "window_start", name="pk_quota_usage"),
    )


def downgrade() -> None:
    op.drop_table("quota_usage")
    op.drop_table("org_quotas")
    with op.batch_alter_table("fine_tuning_jobs", schema=None) as batch_op:
        batch_op.drop_index("ix_fine_tuning_jobs_org_claimed")
        batch_op.drop_column("claimed_at")
