"""a provider may re-run a finished job's evaluation: one row per re-run, claimed by attempt like a file screen

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 14:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "job_evaluations",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("job_id", sa.String(length=40), nullable=False),
        sa.Column("gpu_class", sa.String(length=40), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("finished_at", sa.BigInteger(), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("heartbeat_at", sa.Double(), nullable=True),
        sa.Column("enqueued_at", sa.Double(), nullable=True),
        sa.Column("worker_id", sa.String(length=200), nullable=True),
        sa.ForeignKeyConstraint(
            ["job_id"], ["fine_tuning_jobs.id"], name=op.f("fk_job_evaluations_job_id_fine_tuning_jobs"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_job_evaluations")),
    )
    op.create_index(op.f("ix_job_evaluations_job_id"), "job_evaluations", ["job_id"], unique=False)
    op.create_index(op.f("ix_job_evaluations_status"), "job_evaluations", ["status"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_job_evaluations_status"), table_name="job_evaluations")
    op.drop_index(op.f("ix_job_evaluations_job_id"), table_name="job_evaluations")
    op.drop_table("job_evaluations")
