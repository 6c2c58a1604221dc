"""Messages: an index of edit entries; deleted messages lose the texts of their edits.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-22

An ``edit`` entry of the stream carries the text its message was edited to, and the
message's edit history (``message_edits``) the texts it had before. Deleting a message
emptied the message alone, so history, resume and the edit history still gave every
text it had. Deleting now empties its edit entries and removes its edit history in
the same transaction; this migration does the same for the messages deleted before.

``ix_messages_edits`` (``ref_id``, edit entries only) finds a message's edit entries
without reading the rest of its conversation. On PostgreSQL writes to messages wait
for the build, reads go on.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_EDIT_ENTRIES = "kind = 'edit'"
_DELETED = "SELECT id FROM messages WHERE deleted_at IS NOT NULL"


def upgrade() -> None:
    op.create_index(
        "ix_messages_edits",
        "messages",
        ["ref_id"],
        sqlite_where=sa.text(_EDIT_ENTRIES),
        postgresql_where=sa.text(_EDIT_ENTRIES),
    )
    op.execute(
        "UPDATE messages SET content = '', mentions = NULL "  # noqa: S608 (no input)
        f"WHERE {_EDIT_ENTRIES} AND ref_id IN ({_DELETED}) "
        "AND (content <> '' OR mentions IS NOT NULL)"
    )
    op.execute(f"DELETE FROM message_edits WHERE message_id IN ({_DELETED})")  # noqa: S608


def downgrade() -> None:
    # The emptied texts are gone for good: a delete is final.
    op.drop_index("ix_messages_edits", table_name="messages")
