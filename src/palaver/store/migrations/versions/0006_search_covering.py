"""Search: indexes that let a search read each conversation's newest texts first.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-21

On PostgreSQL a search first reads the newest index rows of the conversations it
covers, which a common word needs and nothing else: ``ix_message_search_recent``
holds the text of every row short enough for a btree entry, so those reads are
index-only scans instead of one heap page per row (a conversation's rows are spread
over the whole table); ``ix_message_search_long`` finds the few longer ones. SQLite
reads a conversation's messages through its existing ``(conversation_id, seq)`` index.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: Bytes of normalised text the covering index holds at most (see
#: ``palaver.store.search.SHORT_BODY``; a btree entry must fit a third of a page).
SHORT_BODY = 2000


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE INDEX ix_message_search_recent ON message_search "
        "(conversation_id, message_id) INCLUDE (sender_id, created_at, body) "
        f"WHERE octet_length(body) <= {SHORT_BODY}"
    )
    op.execute(
        "CREATE INDEX ix_message_search_long ON message_search "
        f"(conversation_id, message_id) WHERE octet_length(body) > {SHORT_BODY}"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP INDEX IF EXISTS ix_message_search_long")
    op.execute("DROP INDEX IF EXISTS ix_message_search_recent")
