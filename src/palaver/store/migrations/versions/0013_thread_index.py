"""Messages: the thread index holds thread replies only.

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-22

``ix_messages_thread`` (``thread_root_id``, ``seq``) finds a thread's replies. It held an
entry for every message, most of them outside any thread (``thread_root_id`` NULL), all
in one run ordered by ``seq``: each new message wrote a page of it wherever its
conversation's ``seq`` fell, a page nothing ever reads. Every lookup names a thread
root (``=``, ``IN``, a join), which implies ``IS NOT NULL``, so a partial index serves
them all on both engines. On PostgreSQL writes to messages wait for the build, reads
go on.
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


def upgrade() -> None:
    op.drop_index("ix_messages_thread", table_name="messages")
    op.create_index(
        "ix_messages_thread",
        "messages",
        ["thread_root_id", "seq"],
        sqlite_where=sa.text(_REPLIES),
        postgresql_where=sa.text(_REPLIES),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_thread", table_name="messages")
    op.create_index("ix_messages_thread", "messages", ["thread_root_id", "seq"])
