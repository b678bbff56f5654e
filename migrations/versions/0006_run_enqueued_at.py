"""enqueued_at on file screens and alignment runs (the sweeper re-sends a run no worker took)

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-26 21:10:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

TABLES = ("file_screens", "base_model_alignments")


def upgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("enqueued_at", sa.Double(), nullable=True))


def downgrade() -> None:
    for table in TABLES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_column("enqueued_at")
