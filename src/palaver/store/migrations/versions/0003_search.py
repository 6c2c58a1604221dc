"""Full-text search: the indexer's watermark and the engine-specific index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-21

SQLite gets an FTS5 table with the trigram tokenizer (substrings from 3 characters)
whose rowid is the message id, and a trigger that drops index rows with their message
(retention). PostgreSQL gets a table holding the normalised text with a pg_trgm GIN
index (substrings), a ``simple`` tsvector with a GIN index (whole words) and the filter
columns, and loses rows with their message through the foreign key. Neither fits
``schema.metadata``; ``tests/store/test_migrations.py`` checks them separately.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "search_state",
        sa.Column("name", sa.String(32), nullable=False),
        sa.Column("last_id", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_search_state"),
    )
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("CREATE VIRTUAL TABLE message_search USING fts5(body, tokenize = 'trigram')")
        op.execute(
            "CREATE TRIGGER message_search_forget AFTER DELETE ON messages "
            "BEGIN DELETE FROM message_search WHERE rowid = old.id; END"
        )
    elif dialect == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        op.execute(
            """
            CREATE TABLE message_search (
                message_id BIGINT NOT NULL,
                conversation_id BIGINT NOT NULL,
                sender_id BIGINT,
                created_at BIGINT NOT NULL,
                body TEXT NOT NULL,
                words TSVECTOR GENERATED ALWAYS AS (to_tsvector('simple', body)) STORED,
                CONSTRAINT pk_message_search PRIMARY KEY (message_id),
                CONSTRAINT fk_message_search_message_id_messages FOREIGN KEY (message_id)
                    REFERENCES messages (id) ON DELETE CASCADE
            )
            """
        )
        op.execute(
            "CREATE INDEX ix_message_search_body ON message_search USING gin (body gin_trgm_ops)"
        )
        op.execute("CREATE INDEX ix_message_search_words ON message_search USING gin (words)")
        op.execute(
            "CREATE INDEX ix_message_search_conversation "
            "ON message_search (conversation_id, message_id)"
        )
    else:
        raise NotImplementedError(f"no search index for {dialect}")


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    if dialect == "sqlite":
        op.execute("DROP TRIGGER IF EXISTS message_search_forget")
    op.execute("DROP TABLE IF EXISTS message_search")
    op.drop_table("search_state")
