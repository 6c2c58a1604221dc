"""Rich messages: edits, deletes, replies, threads, reactions, mentions, pins.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22

Mutations (edit, delete, react, pin...) are entries of the conversation's stream that
point at their target through ``ref_id``; the target row is updated alongside.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

_MESSAGE_COLUMNS = (
    ("ref_id", sa.BigInteger()),
    ("reply_to_id", sa.BigInteger()),
    ("thread_root_id", sa.BigInteger()),
    ("edited_at", sa.BigInteger()),
    ("deleted_at", sa.BigInteger()),
    ("attachments", sa.JSON()),
    ("mentions", sa.Text()),
)


def upgrade() -> None:
    for name, type_ in _MESSAGE_COLUMNS:
        op.add_column("messages", sa.Column(name, type_, nullable=True))
    op.create_index("ix_messages_thread", "messages", ["thread_root_id", "seq"])

    op.create_table(
        "message_edits",
        sa.Column("id", Id, autoincrement=True, nullable=False),
        sa.Column("message_id", Id, nullable=False),
        sa.Column("editor_id", Id, nullable=True),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("edited_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_message_edits"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_message_edits_message_id_messages",
            ondelete="CASCADE",
        ),
    )
    op.create_index("ix_message_edits_message_id", "message_edits", ["message_id"])

    op.create_table(
        "reactions",
        sa.Column("message_id", Id, nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.Column("emoji", sa.String(64), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("message_id", "user_id", "emoji", name="pk_reactions"),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_reactions_message_id_messages",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_reactions_user_id_users", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "pins",
        sa.Column("conversation_id", Id, nullable=False),
        sa.Column("message_id", Id, nullable=False),
        sa.Column("pinned_by", Id, nullable=True),
        sa.Column("pinned_at", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("conversation_id", "message_id", name="pk_pins"),
        sa.ForeignKeyConstraint(
            ["conversation_id"],
            ["conversations.id"],
            name="fk_pins_conversation_id_conversations",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["messages.id"],
            name="fk_pins_message_id_messages",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "thread_reads",
        sa.Column("user_id", Id, nullable=False),
        sa.Column("root_id", Id, nullable=False),
        sa.Column("read_seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("user_id", "root_id", name="pk_thread_reads"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_thread_reads_user_id_users", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["root_id"],
            ["messages.id"],
            name="fk_thread_reads_root_id_messages",
            ondelete="CASCADE",
        ),
    )


def downgrade() -> None:
    for table in ("thread_reads", "pins", "reactions", "message_edits"):
        op.drop_table(table)
    op.drop_index("ix_messages_thread", table_name="messages")
    # SQLite cannot drop columns in place: batch mode copies the table.
    with op.batch_alter_table("messages") as batch:
        for name, _ in reversed(_MESSAGE_COLUMNS):
            batch.drop_column(name)
