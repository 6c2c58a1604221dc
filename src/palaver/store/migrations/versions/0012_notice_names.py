"""System notices: where their text names each user.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-22

Notices ("ada joined", "ada removed bob") are stored as text, with the handles of the
users they name in it. Deleting an account cleared its profile but not those copies.
``notice_names`` records where each user is named, so a deletion can put "Deleted user"
in their place and touch nothing else.

Notices already stored are given their places here: each is read with the shapes the
earlier releases wrote, and a name is recorded when exactly one account that is not
deleted has it as its display name, username or the local part of its e-mail address.
A name several accounts share (display names need not be unique), or that no account
has any more (a display name changed since, an account deleted before this revision),
is left unrecorded: nothing says whose it was. Notices a node of the earlier release
writes after this migration, during a rolling upgrade, get no places either.

One pass over the messages table, in pages by id, reading system notices only.
``palaver migrate`` runs every pending revision in one transaction, so on both engines
writes to the messages wait until the whole upgrade commits (on PostgreSQL, from the
first revision that locks the table, such as 0010's index build).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

PAGE = 2000
_FOREIGN_KEY = "fk_notice_names_message_id_messages"

# The notices of releases 0001 to 0009 (a, and b where there is one, are handles).
_SHAPES = tuple(
    re.compile(shape, re.DOTALL)
    for shape in (
        r"(?P<a>.+) (?:joined|left|cleared the topic)",
        r"(?P<a>.+?) (?:added|removed|banned|muted|unmuted) (?P<b>.+)",
        r"(?P<a>.+?) made (?P<b>.+) (?:owner|admin|member)",
        r"(?P<a>.+?) renamed the (?:room|group) to .+",
        r"(?P<a>.+?) set the topic: .+",
    )
)


def upgrade() -> None:
    conn = op.get_bind()
    postgres = conn.dialect.name == "postgresql"
    # A foreign key locks the table it points at against writes until the migration
    # commits: PostgreSQL gets it last, once the names are in, so that run alone (with
    # nothing else pending) does not hold writes back during the pass. SQLite has its
    # table created with it (its writes wait for the whole migration anyway).
    keys = () if postgres else (_foreign_key(),)
    op.create_table(
        "notice_names",
        sa.Column("message_id", Id, nullable=False),
        sa.Column("start", sa.Integer(), nullable=False),
        sa.Column("length", sa.Integer(), nullable=False),
        sa.Column("user_id", Id, nullable=False),
        sa.PrimaryKeyConstraint("message_id", "start", name="pk_notice_names"),
        *keys,
    )
    op.create_index("ix_notice_names_user_id", "notice_names", ["user_id"])
    _place_names(conn)
    if postgres:
        conn.execute(sa.text("LOCK TABLE messages IN SHARE ROW EXCLUSIVE MODE"))
        # Notices deleted (retention, say) while their names were being placed.
        conn.execute(
            sa.text(
                "DELETE FROM notice_names n "
                "WHERE NOT EXISTS (SELECT 1 FROM messages m WHERE m.id = n.message_id)"
            )
        )
        op.create_foreign_key(
            _FOREIGN_KEY,
            "notice_names",
            "messages",
            ["message_id"],
            ["id"],
            ondelete="CASCADE",
        )


def _foreign_key() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["message_id"], ["messages.id"], name=_FOREIGN_KEY, ondelete="CASCADE"
    )


def downgrade() -> None:
    op.drop_index("ix_notice_names_user_id", table_name="notice_names")
    op.drop_table("notice_names")


def _owners(conn: sa.Connection) -> dict[str, int]:
    """Each name that exactly one live account answers to, and that account."""
    claims: dict[str, set[int]] = {}
    rows = conn.execute(
        sa.text("SELECT id, display_name, username, email FROM users WHERE deleted_at IS NULL")
    )
    for user_id, display_name, username, email in rows:
        local = (email or "").split("@")[0]
        for name in {display_name, username, local}:
            if name:
                claims.setdefault(name, set()).add(user_id)
    return {name: next(iter(ids)) for name, ids in claims.items() if len(ids) == 1}


def _places(content: str, owners: dict[str, int]) -> list[tuple[int, int, int]]:
    """``(start, length, user_id)`` of the names in one notice, read with the shape
    that finds the most of them."""
    best: list[tuple[int, int, int]] = []
    for shape in _SHAPES:
        match = shape.fullmatch(content)
        if match is None:
            continue
        found = [
            (match.start(group), len(name), owners[name])
            for group, name in match.groupdict().items()
            if name in owners
        ]
        if len(found) > len(best):
            best = found
    return best


def _notices(conn: sa.Connection) -> Iterator[list[tuple[int, str]]]:
    after = 0
    while True:
        page = conn.execute(
            sa.text(
                "SELECT id, content FROM messages WHERE kind = 'system' AND id > :after "
                "AND deleted_at IS NULL ORDER BY id LIMIT :page"
            ),
            {"after": after, "page": PAGE},
        ).all()
        if not page:
            return
        yield [(row[0], row[1]) for row in page]
        after = page[-1][0]


def _place_names(conn: sa.Connection) -> None:
    owners = _owners(conn)
    if not owners:
        return
    insert = sa.text(
        "INSERT INTO notice_names (message_id, start, length, user_id) "
        "VALUES (:message_id, :start, :length, :user_id)"
    )
    for page in _notices(conn):
        rows = [
            {"message_id": message_id, "start": start, "length": length, "user_id": user_id}
            for message_id, content in page
            for start, length, user_id in _places(content, owners)
        ]
        if rows:
            conn.execute(insert, rows)
