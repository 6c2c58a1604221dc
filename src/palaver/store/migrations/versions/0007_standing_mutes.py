"""Moderation mutes kept apart from memberships, so that leaving (or being kicked or
banned) and coming back does not lift a mute.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "mutes",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_mutes_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_mutes_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="pk_mutes"),
    )
    # The mutes of current members carry over.
    op.execute(
        "INSERT INTO mutes (conversation_id, user_id, until) "
        "SELECT conversation_id, user_id, muted_until FROM members "
        "WHERE muted_until IS NOT NULL"
    )


def downgrade() -> None:
    op.drop_table("mutes")
