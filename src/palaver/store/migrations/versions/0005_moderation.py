"""Moderation and safety: member mutes and notification settings, bans, invites,
blocks, reports, per-conversation word filters, direct-message privacy.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-21
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    with op.batch_alter_table("members") as batch:
        batch.add_column(sa.Column("muted_until", sa.BigInteger(), nullable=True))
        batch.add_column(
            sa.Column("notify_level", sa.String(16), nullable=False, server_default="all")
        )
        batch.add_column(sa.Column("notify_muted_until", sa.BigInteger(), nullable=True))
    op.create_table(
        "bans",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("until", sa.BigInteger(), nullable=True),
        sa.Column("banned_by", Id, nullable=True),
        sa.Column("at", sa.BigInteger(), nullable=False),
        sa.Column("reason", sa.String(256), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_bans_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_bans_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("conversation_id", "user_id", name="pk_bans"),
    )
    op.create_table(
        "invites",
        sa.Column("code", sa.String(64), nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("created_by", Id, nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("expires_at", sa.BigInteger(), nullable=True),
        sa.Column("max_uses", sa.Integer(), nullable=True),
        sa.Column("uses", sa.Integer(), nullable=False),
        sa.Column("revoked_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_invites_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("code", name="pk_invites"),
    )
    op.create_index("ix_invites_conversation_id", "invites", ["conversation_id"])
    op.create_table(
        "blocks",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("blocked_id", Id, nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_blocks_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["blocked_id"], ["users.id"], name="fk_blocks_blocked_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", "blocked_id", name="pk_blocks"),
    )
    op.create_index("ix_blocks_blocked", "blocks", ["blocked_id"])
    op.create_table(
        "reports",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("message_id", Id, nullable=False),
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("reporter_id", Id, nullable=False),
        sa.Column("reason", sa.String(512), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("resolved_at", sa.BigInteger(), nullable=True),
        sa.Column("resolved_by", Id, nullable=True),
        sa.Column("resolution", sa.String(256), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_reports"),
    )
    op.create_index("ix_reports_open", "reports", ["resolved_at", "id"])
    op.create_table(
        "conversation_filters",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("words", sa.JSON(), nullable=False),
        sa.Column("action", sa.String(16), nullable=True),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_conversation_filters_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("conversation_id", name="pk_conversation_filters"),
    )
    op.create_table(
        "user_privacy",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("dm_policy", sa.String(16), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_user_privacy_user_id_users", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("user_id", name="pk_user_privacy"),
    )


def downgrade() -> None:
    op.drop_table("user_privacy")
    op.drop_table("conversation_filters")
    op.drop_index("ix_reports_open", table_name="reports")
    op.drop_table("reports")
    op.drop_index("ix_blocks_blocked", table_name="blocks")
    op.drop_table("blocks")
    op.drop_index("ix_invites_conversation_id", table_name="invites")
    op.drop_table("invites")
    op.drop_table("bans")
    with op.batch_alter_table("members") as batch:
        batch.drop_column("notify_muted_until")
        batch.drop_column("notify_level")
        batch.drop_column("muted_until")
