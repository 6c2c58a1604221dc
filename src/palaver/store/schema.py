"""The relational schema, shared by SQLite and PostgreSQL (SQLAlchemy Core).

Alembic migrations under ``store/migrations`` create exactly these tables; a test
compares the two so they cannot drift.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

#: The rows ``ix_messages_edits`` holds. Queries meant to use that index say it as this
#: literal, not with a bound parameter: a planner proves a partial index applies only
#: from literals.
EDIT_ENTRIES = "kind = 'edit'"
#: The rows ``ix_messages_thread`` holds.
THREAD_REPLIES = "thread_root_id IS NOT NULL"

metadata = MetaData(
    naming_convention={
        "ix": "ix_%(column_0_label)s",
        "uq": "uq_%(table_name)s_%(column_0_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

# SQLite only makes INTEGER PRIMARY KEY an alias of the rowid (auto-increment);
# BIGINT there would need explicit ids. PostgreSQL gets a real BIGINT identity.
Id = BigInteger().with_variant(Integer(), "sqlite")

users = Table(
    "users",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("username", String(64), nullable=True),
    Column("username_norm", String(64), nullable=True, unique=True),
    Column("email", String(254), nullable=True, unique=True),
    Column("display_name", String(128), nullable=False, default=""),
    Column("avatar_url", String(512), nullable=True),
    Column("password_hash", String(256), nullable=False),
    Column("is_admin", Boolean, nullable=False, default=False),
    Column("is_active", Boolean, nullable=False, default=True),
    Column("created_at", BigInteger, nullable=False),
    Column("deleted_at", BigInteger, nullable=True),
    Column("last_seen_at", BigInteger, nullable=True),
)

sessions = Table(
    "sessions",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("revoked_at", BigInteger, nullable=True),
    Column("device", String(256), nullable=False, default=""),
    Column("ip", String(64), nullable=False, default=""),
)

refresh_tokens = Table(
    "refresh_tokens",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column(
        "session_id",
        String(32),
        ForeignKey("sessions.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

password_resets = Table(
    "password_resets",
    metadata,
    Column("token_hash", String(64), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False, index=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger, nullable=True),
)

audit_log = Table(
    "audit_log",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("at", BigInteger, nullable=False, index=True),
    Column("action", String(64), nullable=False, index=True),
    Column("actor_id", Id, nullable=True, index=True),
    Column("target", String(256), nullable=True),
    Column("ip", String(64), nullable=True),
    Column("details", JSON, nullable=False, default=dict),
)

conversations = Table(
    "conversations",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(128), nullable=True),
    # Rooms are addressed by name, case-insensitively; NULL for directs and groups.
    Column("name_norm", String(128), nullable=True, unique=True),
    # "small:large" user ids, so one pair has exactly one direct conversation.
    Column("direct_key", String(64), nullable=True, unique=True),
    Column("topic", String(512), nullable=True),
    Column("created_by", Id, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # The last sequence number handed out; the row lock on it keeps sequences gapless.
    Column("last_seq", BigInteger, nullable=False, default=0),
    # The lowest sequence number still stored (retention may remove older ones).
    Column("min_seq", BigInteger, nullable=False, default=1),
    Column("last_message_at", BigInteger, nullable=True),
)

members = Table(
    "members",
    metadata,
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("role", String(16), nullable=False, default="member"),
    Column("joined_at", BigInteger, nullable=False),
    Column("read_seq", BigInteger, nullable=False, default=0),
    Column("delivered_seq", BigInteger, nullable=False, default=0),
    # Moderation mute: sends refused until then (a far-future value means for ever).
    Column("muted_until", BigInteger, nullable=True),
    # The member's own notification settings for this conversation.
    Column("notify_level", String(16), nullable=False, default="all", server_default="all"),
    Column("notify_muted_until", BigInteger, nullable=True),
    Index("ix_members_user", "user_id"),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("seq", BigInteger, nullable=False),
    Column("sender_id", Id, nullable=True),
    Column("kind", String(16), nullable=False, default="text"),
    Column("content", Text, nullable=False),
    Column("client_msg_id", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # The message a mutation entry (edit, delete, react, pin...) applies to.
    Column("ref_id", BigInteger, nullable=True),
    Column("reply_to_id", BigInteger, nullable=True),
    Column("thread_root_id", BigInteger, nullable=True),
    Column("edited_at", BigInteger, nullable=True),
    Column("deleted_at", BigInteger, nullable=True),
    Column("attachments", JSON(none_as_null=True), nullable=True),
    # ",name,other,@room,": one substring test counts a user's mentions (no join).
    Column("mentions", Text, nullable=True),
    UniqueConstraint("conversation_id", "seq", name="uq_messages_conversation_seq"),
    # A retried send finds its first copy here instead of creating a second message.
    # Only messages sent with a client id are entered: the others would cost a page
    # write each (one per sender) for an entry nothing ever looks up. A client id is
    # the sender's within one conversation: clients may number them per conversation.
    Index(
        "uq_messages_client_msg",
        "sender_id",
        "conversation_id",
        "client_msg_id",
        unique=True,
        sqlite_where=text("client_msg_id IS NOT NULL"),
        postgresql_where=text("client_msg_id IS NOT NULL"),
    ),
    Index("ix_messages_created", "created_at"),
    # Thread replies only: the rest (most messages) would each write a page of it that
    # no lookup reads, since every lookup names a root.
    Index(
        "ix_messages_thread",
        "thread_root_id",
        "seq",
        sqlite_where=text(THREAD_REPLIES),
        postgresql_where=text(THREAD_REPLIES),
    ),
    # A message's edit entries carry its texts, and deleting it empties them; edits are
    # few, so this costs the rare edit a page write and nothing else one.
    Index(
        "ix_messages_edits",
        "ref_id",
        sqlite_where=text(EDIT_ENTRIES),
        postgresql_where=text(EDIT_ENTRIES),
    ),
    # Ids are never handed out twice, even once the newest message is deleted (by
    # retention, say): the search indexer's watermark and clients rely on that.
    sqlite_autoincrement=True,
)

# Where a system notice's text names each user (core.notices), so deleting an account
# takes its name out of every notice and out of nothing else.
notice_names = Table(
    "notice_names",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    # In characters, as Python counts them.
    Column("start", Integer, primary_key=True),
    Column("length", Integer, nullable=False),
    Column("user_id", Id, nullable=False, index=True),
)

# The text a message had before each edit, for moderators while it lives (a delete
# removes its rows).
message_edits = Table(
    "message_edits",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column(
        "message_id",
        Id,
        ForeignKey("messages.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("editor_id", Id, nullable=True),
    Column("content", Text, nullable=False),
    # When that text was replaced.
    Column("edited_at", BigInteger, nullable=False),
)

# Who reacted with what: the current state; the stream keeps the history of toggles.
reactions = Table(
    "reactions",
    metadata,
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("emoji", String(64), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
)

pins = Table(
    "pins",
    metadata,
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("message_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("pinned_by", Id, nullable=True),
    Column("pinned_at", BigInteger, nullable=False),
)

# Per user and thread: the conversation seq of the last thread reply read.
thread_reads = Table(
    "thread_reads",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("root_id", Id, ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True),
    Column("read_seq", BigInteger, nullable=False),
)

# How far the search indexer has come: every message id up to ``last_id`` is indexed
# or will never exist. The index itself is engine-specific (an FTS5 table on SQLite, a
# table with trigram and full-text indexes on PostgreSQL): the migration creates it and
# ``palaver.store.search`` names it.
search_state = Table(
    "search_state",
    metadata,
    Column("name", String(32), primary_key=True),
    Column("last_id", BigInteger, nullable=False, default=0),
)

# -- moderation and safety --------------------------------------------------------------

bans = Table(
    "bans",
    metadata,
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("until", BigInteger, nullable=True),  # NULL: until lifted
    Column("banned_by", Id, nullable=True),
    Column("at", BigInteger, nullable=False),
    Column("reason", String(256), nullable=True),
)

# A moderation mute, apart from the membership so that leaving, a kick or a ban and
# coming back do not lift it; ``members.muted_until`` copies it for member views.
mutes = Table(
    "mutes",
    metadata,
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("until", BigInteger, nullable=False),
)

invites = Table(
    "invites",
    metadata,
    Column("code", String(64), primary_key=True),
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=False,
        index=True,
    ),
    Column("created_by", Id, nullable=True),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=True),
    Column("max_uses", Integer, nullable=True),
    Column("uses", Integer, nullable=False, default=0),
    Column("revoked_at", BigInteger, nullable=True),
)

blocks = Table(
    "blocks",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("blocked_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    Column("created_at", BigInteger, nullable=False),
    Index("ix_blocks_blocked", "blocked_id"),
)

reports = Table(
    "reports",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("message_id", Id, nullable=False),
    Column("conversation_id", Id, nullable=False),
    Column("reporter_id", Id, nullable=False),
    Column("reason", String(512), nullable=False, default=""),
    Column("created_at", BigInteger, nullable=False),
    Column("resolved_at", BigInteger, nullable=True),
    Column("resolved_by", Id, nullable=True),
    Column("resolution", String(256), nullable=True),
    Index("ix_reports_open", "resolved_at", "id"),
)

conversation_filters = Table(
    "conversation_filters",
    metadata,
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("words", JSON, nullable=False, default=list),
    Column("action", String(16), nullable=True),  # NULL: the server's action
)

user_privacy = Table(
    "user_privacy",
    metadata,
    Column("user_id", Id, ForeignKey("users.id", ondelete="CASCADE"), primary_key=True),
    # Who may open a direct conversation: "everyone" or "contacts".
    Column("dm_policy", String(16), nullable=False, default="everyone"),
)

uploads = Table(
    "uploads",
    metadata,
    Column("id", Id, primary_key=True, autoincrement=True),
    Column("owner_id", Id, ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    # The conversation whose members may read the file (NULL: only its owner, until it
    # is attached to a message).
    Column(
        "conversation_id",
        Id,
        ForeignKey("conversations.id", ondelete="CASCADE"),
        nullable=True,
    ),
    Column("name", String(255), nullable=False),
    Column("kind", String(16), nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("width", Integer, nullable=True),
    Column("height", Integer, nullable=True),
    Column("storage_key", String(64), nullable=False, unique=True),
    Column("thumbnail_key", String(64), nullable=True),
    Column("created_at", BigInteger, nullable=False),
    # First attached to a message; files never attached expire (upload_orphan_hours).
    Column("attached_at", BigInteger, nullable=True),
    Index("ix_uploads_owner", "owner_id", "id"),
    Index("ix_uploads_conversation", "conversation_id"),
    Index("ix_uploads_unattached", "attached_at", "created_at"),
)
