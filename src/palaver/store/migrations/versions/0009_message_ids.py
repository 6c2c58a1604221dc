"""Messages: client ids indexed only when given; on SQLite, ids never reused.

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-22

The unique ``(sender_id, client_msg_id)`` constraint becomes a unique index of the rows
that have a client id. A message sent without one no longer writes an index page of
its sender's (about a third of the pages a group commit wrote on SQLite when every
sender had a room of its own).

SQLite gave a new message the largest id in the table plus one, so once the newest
message was deleted (retention, a deleted conversation) its id came back, and the
search indexer, whose watermark had passed it, never indexed the new message. The table
now has ``AUTOINCREMENT``.

SQLite changes a table's constraints only by copying the table. Dropping the old copy
with foreign keys enforced would delete every edit, reaction, pin and thread row that
points at a message, so Palaver runs SQLite migrations with foreign keys off
(``SqliteStore.migrate``); this one refuses to run otherwise, and checks every foreign
key before it commits. Indexes and triggers on the table are recreated as they were.
On PostgreSQL the new index is built before the constraint goes: writes to messages
wait for the build, reads only for the moment the constraint is dropped.

Exporting a user's messages (``messages_by_sender``) used the old constraint's index
for ``sender_id`` alone; it now reads the table once per export, about 60 ms per million
messages on SQLite, rather than every message write paying for an entry.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import context, op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_COLUMNS = (
    "id, conversation_id, seq, sender_id, kind, content, client_msg_id, created_at, ref_id, "
    "reply_to_id, thread_root_id, edited_at, deleted_at, attachments, mentions"
)

_BODY = """
    conversation_id INTEGER NOT NULL,
    seq BIGINT NOT NULL,
    sender_id INTEGER,
    kind VARCHAR(16) NOT NULL,
    content TEXT NOT NULL,
    client_msg_id VARCHAR(64),
    created_at BIGINT NOT NULL,
    ref_id BIGINT,
    reply_to_id BIGINT,
    thread_root_id BIGINT,
    edited_at BIGINT,
    deleted_at BIGINT,
    attachments JSON,
    mentions TEXT,
    CONSTRAINT uq_messages_conversation_seq UNIQUE (conversation_id, seq),
    CONSTRAINT fk_messages_conversation_id_conversations FOREIGN KEY(conversation_id)
        REFERENCES conversations (id) ON DELETE CASCADE"""

_NEW_TABLE = f"""CREATE TABLE messages_0009 (
    id INTEGER NOT NULL PRIMARY KEY AUTOINCREMENT,{_BODY}
)"""

_OLD_TABLE = f"""CREATE TABLE messages_0009 (
    id INTEGER NOT NULL,{_BODY},
    CONSTRAINT uq_messages_sender_client_msg UNIQUE (sender_id, client_msg_id),
    CONSTRAINT pk_messages PRIMARY KEY (id)
)"""

_PARTIAL = (
    "CREATE UNIQUE INDEX uq_messages_sender_client_msg ON messages "
    "(sender_id, client_msg_id) WHERE client_msg_id IS NOT NULL"
)


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _copy_messages(_NEW_TABLE)
        op.execute(_PARTIAL)
    else:
        # Built first under another name (writes wait for it, reads go on); dropping the
        # constraint locks the table against reads too, so that comes last and is brief.
        op.create_index(
            "uq_messages_sender_client_msg_0009",
            "messages",
            ["sender_id", "client_msg_id"],
            unique=True,
            postgresql_where=sa.text("client_msg_id IS NOT NULL"),
        )
        op.drop_constraint("uq_messages_sender_client_msg", "messages", type_="unique")
        op.execute(
            "ALTER INDEX uq_messages_sender_client_msg_0009 RENAME TO uq_messages_sender_client_msg"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _copy_messages(_OLD_TABLE, drop=("uq_messages_sender_client_msg",))
    else:
        op.drop_index("uq_messages_sender_client_msg", table_name="messages")
        op.create_unique_constraint(
            "uq_messages_sender_client_msg", "messages", ["sender_id", "client_msg_id"]
        )


def _copy_messages(create: str, drop: Sequence[str] = ()) -> None:
    """Replace the messages table by a copy made with ``create`` (named messages_0009),
    keeping every row, id, index (but those named in ``drop``) and trigger."""
    if context.is_offline_mode():
        raise RuntimeError("copying the messages table needs the live database")
    bind = op.get_bind()
    if bind.execute(sa.text("PRAGMA foreign_keys")).scalar():
        raise RuntimeError(
            "this migration copies the messages table: run it with `palaver migrate`, "
            "which turns SQLite's foreign keys off for it (with them on, dropping the "
            "old table would delete every edit, reaction and pin)"
        )
    kept = [
        sql
        for name, sql in bind.execute(
            sa.text(
                "SELECT name, sql FROM sqlite_master WHERE tbl_name = 'messages' "
                "AND type IN ('index', 'trigger') AND sql IS NOT NULL ORDER BY type, name"
            )
        )
        if name not in drop
    ]
    # Past every id still named anywhere: the newest message may have been deleted
    # after the search indexer passed it (an id at or below its watermark is never
    # indexed) or after it was reported (a report would then show another message).
    top = bind.execute(
        sa.text(
            "SELECT max(coalesce((SELECT max(id) FROM messages), 0), "
            "coalesce((SELECT last_id FROM search_state WHERE name = 'messages'), 0), "
            "coalesce((SELECT max(message_id) FROM reports), 0))"
        )
    ).scalar()
    # Whatever was wrong before (rows deleted by a tool that enforces no keys) is not
    # this copy's doing: only a new breakage stops it.
    broken_before = set(bind.execute(sa.text("PRAGMA foreign_key_check")).fetchall())
    op.execute(create)
    op.execute(f"INSERT INTO messages_0009 ({_COLUMNS}) SELECT {_COLUMNS} FROM messages")  # noqa: S608
    op.execute("DROP TABLE messages")
    op.execute("ALTER TABLE messages_0009 RENAME TO messages")
    for sql in kept:
        op.execute(sql)
    if "AUTOINCREMENT" in create:
        # The copy left the largest id present there (or nothing, for no rows).
        op.execute(sa.text("DELETE FROM sqlite_sequence WHERE name = 'messages'"))
        op.execute(
            sa.text("INSERT INTO sqlite_sequence (name, seq) VALUES ('messages', :top)").bindparams(
                top=top
            )
        )
    broken = set(bind.execute(sa.text("PRAGMA foreign_key_check")).fetchall()) - broken_before
    if broken:
        raise RuntimeError(f"foreign keys broken by the copy of messages: {sorted(broken)[:5]}")
