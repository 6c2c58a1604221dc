"""Uploads: stored files, their owner and the conversation that may read them.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "uploads",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("owner_id", Id, nullable=False),
        sa.Column("conversation_id", Id, nullable=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("storage_key", sa.String(64), nullable=False),
        sa.Column("thumbnail_key", sa.String(64), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_uploads"),
        sa.UniqueConstraint("storage_key", name="uq_uploads_storage_key"),
        sa.ForeignKeyConstraint(
            ["owner_id"], ["users.id"], name="fk_uploads_owner_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_uploads_conversation_id_conversations",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_uploads_owner", "uploads", ["owner_id", "id"])
    op.create_index("ix_uploads_conversation", "uploads", ["conversation_id"])


def downgrade() -> None:
    op.drop_index("ix_uploads_conversation", table_name="uploads")
    op.drop_index("ix_uploads_owner", table_name="uploads")
    op.drop_table("uploads")
