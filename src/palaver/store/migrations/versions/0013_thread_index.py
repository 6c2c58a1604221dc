"""Messages: the thread index holds thread replies only.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22

``ix_messages_thread`` (``thread_root_id``, ``seq``) finds a thread's replies. It held an
entry for every message, most of them outside any thread (``thread_root_id`` NULL), all
in one run ordered by ``seq``: each new message wrote a page of it wherever its
conversation's ``seq`` fell, a page nothing ever reads. Every lookup names a thread
root (``=``, ``IN``, a join), which implies ``IS NOT NULL``, so a partial index serves
them all on both engines.

On PostgreSQL the new index is built beside the old one, while writes to messages wait
and reads go on, then takes its name: dropping the old index locks the table, reads
too, but only from then until the upgrade commits, not through the build. On SQLite
readers never wait for a schema change; writers wait for the whole upgrade.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_REPLIES = "thread_root_id IS NOT NULL"
_NAME = "ix_messages_thread"
_BUILDING = "ix_messages_thread_new"


def _swap(where: str | None) -> None:
    """Replace ``ix_messages_thread`` by one holding the rows ``where`` selects (all
    rows when ``None``)."""
    condition = sa.text(where) if where is not None else None
    if op.get_bind().dialect.name != "postgresql":
        # SQLite cannot rename an index, and its readers do not wait anyway.
        op.drop_index(_NAME, table_name="messages")
        op.create_index(_NAME, "messages", ["thread_root_id", "seq"], sqlite_where=condition)
        return
    op.create_index(_BUILDING, "messages", ["thread_root_id", "seq"], postgresql_where=condition)
    op.drop_index(_NAME, table_name="messages")
    op.execute(f"ALTER INDEX {_BUILDING} RENAME TO {_NAME}")


def upgrade() -> None:
    _swap(_REPLIES)


def downgrade() -> None:
    _swap(None)
