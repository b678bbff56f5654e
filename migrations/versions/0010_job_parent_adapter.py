"""a job may continue from a fine-tuned model or checkpoint: its name and its adapter's object prefix

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 16:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_model", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("parent_adapter_prefix", sa.String(length=512), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("fine_tuning_jobs", schema=None) as batch_op:
        batch_op.drop_column("parent_adapter_prefix")
        batch_op.drop_column("parent_model")
