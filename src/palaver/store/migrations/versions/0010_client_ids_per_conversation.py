"""Messages: a client id is unique per sender within a conversation.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-22

A client that numbered its message ids per conversation (1, 2, 3... in each) had its
first message to a second conversation answered as a duplicate of the first
conversation's, and never stored. The unique index of client ids now takes the
conversation too: a retry lands in the conversation its first copy went to, so
deduplication loses nothing by it.

Downgrading cannot keep two messages of one sender with the same client id: the later
copies lose their client id (the messages themselves stay).
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_WHERE = sa.text("client_msg_id IS NOT NULL")


def upgrade() -> None:
    # Built before the old one goes, so no moment lets a duplicate in.
    op.create_index(
        "uq_messages_client_msg",
        "messages",
        ["sender_id", "conversation_id", "client_msg_id"],
        unique=True,
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )
    op.drop_index("uq_messages_sender_client_msg", table_name="messages")


def downgrade() -> None:
    op.execute(
        "UPDATE messages SET client_msg_id = NULL WHERE client_msg_id IS NOT NULL "
        "AND EXISTS (SELECT 1 FROM messages AS first WHERE first.sender_id = messages.sender_id "
        "AND first.client_msg_id = messages.client_msg_id AND first.id < messages.id)"
    )
    op.create_index(
        "uq_messages_sender_client_msg",
        "messages",
        ["sender_id", "client_msg_id"],
        unique=True,
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )
    op.drop_index("uq_messages_client_msg", table_name="messages")
