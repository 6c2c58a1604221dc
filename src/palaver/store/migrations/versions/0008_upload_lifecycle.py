"""Uploads: when a file was first attached to a message, so unattached ones expire.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-22

Files already bound to a conversation count as attached (their first binding time is
unknown, so their upload time stands in): nothing that existed before may expire.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("uploads") as batch:
        batch.add_column(sa.Column("attached_at", sa.BigInteger(), nullable=True))
    op.execute("UPDATE uploads SET attached_at = created_at WHERE conversation_id IS NOT NULL")
    op.create_index("ix_uploads_unattached", "uploads", ["attached_at", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_uploads_unattached", table_name="uploads")
    with op.batch_alter_table("uploads") as batch:
        batch.drop_column("attached_at")
