"""checkpoint permissions (another org may call a shared checkpoint)

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 15:20:00
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checkpoint_permissions",
        sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False),
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("checkpoint_id", sa.String(length=40), nullable=False),
        sa.Column("project_id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"],
            ["fine_tuning_checkpoints.id"],
            name=op.f("fk_checkpoint_permissions_checkpoint_id_fine_tuning_checkpoints"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["project_id"],
            ["organizations.id"],
            name=op.f("fk_checkpoint_permissions_project_id_organizations"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_checkpoint_permissions")),
        sa.UniqueConstraint("id", name=op.f("uq_checkpoint_permissions_id")),
    )
    with op.batch_alter_table("checkpoint_permissions", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkpoint_permissions_checkpoint_id"), ["checkpoint_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_checkpoint_permissions_project_id"), ["project_id"], unique=False)
        batch_op.create_index(
            "uq_checkpoint_permissions_checkpoint_project", ["checkpoint_id", "project_id"], unique=True
        )


def downgrade() -> None:
    with op.batch_alter_table("checkpoint_permissions", schema=None) as batch_op:
        batch_op.drop_index("uq_checkpoint_permissions_checkpoint_project")
        batch_op.drop_index(batch_op.f("ix_checkpoint_permissions_project_id"))
        batch_op.drop_index(batch_op.f("ix_checkpoint_permissions_checkpoint_id"))
    op.drop_table("checkpoint_permissions")
