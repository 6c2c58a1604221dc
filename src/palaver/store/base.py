"""The storage interface. Every implementation passes ``tests/store`` (the contract suite).

Conventions for every method:

* times are integer milliseconds since the epoch (:func:`palaver.core.models.now_ms`);
* "not found" is ``None`` (or ``False``), never an exception;
* a uniqueness violation raises :class:`~palaver.core.errors.PalaverError` with code
  ``CONFLICT`` and ``field`` naming the column a caller can fix;
* a database that cannot be reached raises :class:`StoreUnavailable`, so callers answer
  with a retryable error and never acknowledge a write that did not commit.
"""

from __future__ import annotations

import abc
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from palaver.core.models import (
    Appended,
    AuditEvent,
    Conversation,
    ConversationKind,
    ConversationSummary,
    Member,
    Message,
    NewMessage,
    Role,
    Session,
    User,
)
from palaver.core.notices import Notice
from palaver.core.search import IndexProgress, SearchFilter
from palaver.store.moderation import ModerationStore
from palaver.store.rich_base import RichMessageStore


class StoreUnavailable(Exception):
    """The database could not be reached or the transaction could not commit."""


class RefreshOutcome(StrEnum):
    OK = "ok"
    UNKNOWN = "unknown"  # no such token
    REUSED = "reused"  # already used: the whole session (token family) is now revoked
    REVOKED = "revoked"  # the session was revoked or has expired


@dataclass(frozen=True, slots=True)
class RefreshResult:
    outcome: RefreshOutcome
    session: Session | None


@dataclass(frozen=True, slots=True)
class CursorUpdate:
    """Move a member's receipt cursors forward (``None`` leaves one as it is)."""

    conversation_id: int
    user_id: int
    read_seq: int | None = None
    delivered_seq: int | None = None


@dataclass(frozen=True, slots=True)
class Anonymised:
    """What deleting an account changed in its conversations."""

    #: The rooms and groups it was a member of (its direct conversations, left too,
    #: are not listed: nobody is told of those).
    left: tuple[int, ...]
    #: The members who now own what it owned.
    heirs: tuple[Member, ...]


USER_FIELDS = frozenset(
    {"display_name", "avatar_url", "password_hash", "is_active", "is_admin", "last_seen_at"}
)


class Store(RichMessageStore, ModerationStore, abc.ABC):
    """Persistent state of Palaver: accounts, sessions, audit, conversations, messages."""

    #: How many ``append_messages`` transactions may run at once. A database with one
    #: writer gains nothing from more; one that can commit several at a time lets the
    #: next batch be written while the previous one waits for its fsync.
    append_concurrency: int = 1

    # -- lifecycle -----------------------------------------------------------------

    @abc.abstractmethod
    async def connect(self) -> None:
        """Open the connection pool. Call once before any other method."""

    @abc.abstractmethod
    async def close(self) -> None:
        """Close every connection. The store cannot be used afterwards."""

    @abc.abstractmethod
    async def ping(self) -> None:
        """Run a trivial query; raise :class:`StoreUnavailable` when that fails."""

    @abc.abstractmethod
    async def migrate(self) -> None:
        """Bring the schema to the newest Alembic revision (idempotent)."""

    @abc.abstractmethod
    async def downgrade(self, revision: str) -> None:
        """Take the schema back to an Alembic revision ("base": no tables at all)."""

    # -- users ---------------------------------------------------------------------

    @abc.abstractmethod
    async def create_user(
        self,
        *,
        username: str | None,
        email: str | None,
        display_name: str,
        password_hash: str,
        is_admin: bool = False,
    ) -> User:
        """Insert a user. Usernames are unique case-insensitively, emails are stored and
        compared lower-case. A clash raises ``CONFLICT`` with ``field`` ``username`` or
        ``email``."""

    @abc.abstractmethod
    async def get_user(self, user_id: int) -> User | None:
        """The user with this id, deleted or not."""

    @abc.abstractmethod
    async def get_users(self, user_ids: Iterable[int]) -> dict[int, User]:
        """The users with these ids that exist, keyed by id."""

    @abc.abstractmethod
    async def get_user_by_login(self, login: str) -> User | None:
        """The user whose username (case-insensitive) or e-mail (lower-cased) is ``login``."""

    @abc.abstractmethod
    async def list_users(
        self, *, limit: int = 100, offset: int = 0, include_inactive: bool = True
    ) -> list[User]:
        """Users ordered by id."""

    @abc.abstractmethod
    async def search_users(self, query: str, *, limit: int = 20, offset: int = 0) -> list[User]:
        """Active users whose username, display name or e-mail starts with ``query``
        (case-insensitive), ordered by username then id."""

    @abc.abstractmethod
    async def update_user(self, user_id: int, **fields: Any) -> User | None:
        """Set some of :data:`USER_FIELDS`; return the updated user or ``None``."""

    @abc.abstractmethod
    async def anonymise_user(self, user_id: int, at: int) -> Anonymised | None:
        """Delete an account: clear username, e-mail, display name, avatar and password,
        deactivate it, revoke its sessions and drop its memberships and reset tokens.
        Each conversation it owned passes to an heir, as when an owner leaves
        (:meth:`leave_conversation`). Messages stay (as "Deleted user") so
        conversations keep their sequence, and every system notice that names the
        account (:meth:`append_notice`) reads "Deleted user" in its place. ``None``
        when there is no such account."""

    # -- sessions and tokens ---------------------------------------------------------

    @abc.abstractmethod
    async def create_session(self, session: Session, refresh_hash: str) -> None:
        """Insert a session with its first refresh token (stored hashed)."""

    @abc.abstractmethod
    async def get_session(self, session_id: str) -> Session | None:
        """The session with this id, revoked or not."""

    @abc.abstractmethod
    async def list_sessions(self, user_id: int, *, active_only: bool = True) -> list[Session]:
        """A user's sessions, most recently seen first."""

    @abc.abstractmethod
    async def touch_session(self, session_id: str, at: int, ip: str | None = None) -> None:
        """Record activity on a session."""

    @abc.abstractmethod
    async def revoke_session(self, session_id: str, at: int) -> bool:
        """Revoke a session; ``False`` if it was unknown or already revoked."""

    @abc.abstractmethod
    async def revoke_user_sessions(
        self, user_id: int, at: int, *, except_session: str | None = None
    ) -> list[str]:
        """Revoke every active session of a user but one; return the revoked ids."""

    @abc.abstractmethod
    async def rotate_refresh_token(
        self, token_hash: str, new_hash: str, at: int, expires_at: int
    ) -> RefreshResult:
        """In one transaction: mark ``token_hash`` used, store ``new_hash`` for the same
        session and extend the session to ``expires_at``. A token presented a second
        time revokes its session (the token family) and answers ``REUSED``."""

    @abc.abstractmethod
    async def create_password_reset(
        self, token_hash: str, user_id: int, at: int, expires_at: int
    ) -> None:
        """Store a single-use password-reset token (hashed)."""

    @abc.abstractmethod
    async def consume_password_reset(self, token_hash: str, at: int) -> int | None:
        """Mark the token used and return its user id, or ``None`` when it is unknown,
        used or expired."""

    # -- audit -----------------------------------------------------------------------

    @abc.abstractmethod
    async def add_audit(
        self,
        action: str,
        *,
        at: int,
        actor_id: int | None = None,
        target: str | None = None,
        ip: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        """Append a security or moderation event to the audit log."""

    @abc.abstractmethod
    async def list_audit(
        self,
        *,
        limit: int = 50,
        before_id: int | None = None,
        action: str | None = None,
        actor_id: int | None = None,
    ) -> list[AuditEvent]:
        """Audit events, newest first, paged by ``before_id``."""

    # -- conversations -------------------------------------------------------------

    @abc.abstractmethod
    async def create_conversation(
        self,
        *,
        kind: ConversationKind,
        name: str | None,
        created_by: int | None,
        members: Sequence[tuple[int, Role]],
        at: int,
        topic: str | None = None,
    ) -> Conversation:
        """Create a room or group with its first members. A room name already taken
        (case-insensitively) raises ``CONFLICT`` with ``field`` ``name``."""

    @abc.abstractmethod
    async def update_conversation(
        self,
        conversation_id: int,
        *,
        name: str | None = None,
        topic: str | None = None,
        set_topic: bool = False,
    ) -> Conversation | None:
        """Rename a room or group (``name`` when given) and set or clear its topic
        (when ``set_topic``; ``None`` clears it). ``None`` when there is no such
        conversation; a room name already taken raises ``CONFLICT`` as at creation."""

    @abc.abstractmethod
    async def get_or_create_direct(
        self, user_a: int, user_b: int, at: int
    ) -> tuple[Conversation, bool]:
        """The one direct conversation of two distinct users, created when missing;
        the flag says whether it was created. Safe against concurrent callers."""

    @abc.abstractmethod
    async def get_conversation(self, conversation_id: int) -> Conversation | None:
        """The conversation with this id."""

    @abc.abstractmethod
    async def last_seqs(self, conversation_ids: Iterable[int]) -> dict[int, int]:
        """Each existing conversation's ``last_seq``, keyed by id (one query)."""

    @abc.abstractmethod
    async def get_room_by_name(self, name: str) -> Conversation | None:
        """The room with this name, case-insensitively."""

    @abc.abstractmethod
    async def list_rooms(
        self, *, query: str | None = None, limit: int = 100, offset: int = 0
    ) -> list[tuple[Conversation, int]]:
        """Public rooms with their member counts, by name; ``query`` filters by name
        prefix."""

    @abc.abstractmethod
    async def add_member(
        self, conversation_id: int, user_id: int, role: Role, at: int
    ) -> Member | None:
        """Add a member whose cursors start at the conversation's current last
        sequence (history before joining counts as read). ``None`` if already one. A
        newcomer to a room or group nobody owns (everyone left) becomes its owner,
        whatever ``role`` says: the returned membership tells."""

    @abc.abstractmethod
    async def remove_member(self, conversation_id: int, user_id: int) -> bool:
        """Remove a member; ``False`` if they were not one."""

    @abc.abstractmethod
    async def leave_conversation(
        self, conversation_id: int, user_id: int
    ) -> tuple[bool, Member | None]:
        """Remove a member who leaves of their own accord: ``(False, None)`` if they
        were not one. When they owned the conversation, the same transaction makes the
        longest-standing admin (else the longest-standing member; ties by user id) the
        owner, and the second element is that heir's membership; ``None`` when nobody
        is left or the leaver was no owner."""

    @abc.abstractmethod
    async def set_member_role(self, conversation_id: int, user_id: int, role: Role) -> bool:
        """Change a member's role; ``False`` if they are not a member."""

    @abc.abstractmethod
    async def get_member(self, conversation_id: int, user_id: int) -> Member | None:
        """The membership, or ``None`` for a non-member."""

    @abc.abstractmethod
    async def list_members(self, conversation_id: int) -> list[Member]:
        """Every member of a conversation, by join time."""

    @abc.abstractmethod
    async def member_ids(self, conversation_id: int) -> list[int]:
        """The user ids of every member (the fan-out list)."""

    async def count_members(self, conversation_id: int) -> int:
        """How many members the conversation has (0 when it does not exist)."""
        return len(await self.member_ids(conversation_id))

    @abc.abstractmethod
    async def user_conversation_ids(self, user_id: int) -> list[int]:
        """Ids of the conversations a user belongs to."""

    @abc.abstractmethod
    async def memberships(self, user_ids: Sequence[int]) -> dict[int, dict[int, int]]:
        """For each of ``user_ids`` that belongs anywhere: its conversations, each with
        its delivery cursor (``{user_id: {conversation_id: delivered_seq}}``)."""

    @abc.abstractmethod
    async def list_user_conversations(self, user_id: int) -> list[ConversationSummary]:
        """A user's conversations with member count, unread count (messages of other
        senders past the read cursor) and last message, latest activity first."""

    @abc.abstractmethod
    async def contacts(self, user_id: int) -> set[int]:
        """Users who share at least one conversation with ``user_id`` (not itself)."""

    # -- messages ------------------------------------------------------------------

    @abc.abstractmethod
    async def append_messages(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        """Append messages in one durable transaction (group commit) and return one
        result per input, in order. Each conversation's new messages get consecutive
        sequence numbers after its ``last_seq``. A message whose ``(sender_id,
        conversation_id, client_msg_id)`` already exists is not stored again: its result
        is the original with ``duplicate=True``. A new message whose sender is not a
        member of its conversation, or whose conversation does not exist, fails the
        whole batch with ``NOT_FOUND`` (the caller retries the others alone): whatever a
        node believes of its sockets, only members write. The same transaction stamps
        ``attached_at`` on the
        uploads the stored messages carry (elements of ``attachments`` with an integer
        ``id`` naming an upload bound to the message's conversation), so those never
        expire and no other upload stops expiring. Raises :class:`StoreUnavailable`
        when nothing committed."""

    @abc.abstractmethod
    async def append_notice(self, conversation_id: int, notice: Notice, at: int) -> Message:
        """Append a system notice (a message of kind ``system``, with no sender) and
        where its text names each user, in one transaction; return the message.
        ``NOT_FOUND`` when the conversation does not exist."""

    @abc.abstractmethod
    async def get_messages(
        self,
        conversation_id: int,
        *,
        after_seq: int | None = None,
        before_seq: int | None = None,
        limit: int = 50,
    ) -> list[Message]:
        """Messages in ascending sequence order. With ``after_seq``, the oldest ``limit``
        messages after it; otherwise the newest ``limit`` before ``before_seq`` (or the
        end)."""

    @abc.abstractmethod
    async def get_message(self, message_id: int) -> Message | None:
        """The message with this server id."""

    @abc.abstractmethod
    async def advance_cursors(self, updates: Sequence[CursorUpdate]) -> list[Member]:
        """Move receipt cursors forward only (never back, never past ``last_seq``), in
        one transaction; return the memberships that changed."""

    @abc.abstractmethod
    async def purge_messages_before(self, cutoff: int) -> int:
        """Delete messages created before ``cutoff`` (retention) and raise each affected
        conversation's ``min_seq``; return how many were deleted."""

    # -- search --------------------------------------------------------------------

    @abc.abstractmethod
    async def search_backlog(self) -> bool:
        """Whether messages wait to be indexed for search (one cheap read)."""

    @abc.abstractmethod
    async def index_pending(self, *, batch: int = 500, now: int | None = None) -> IndexProgress:
        """Index up to ``batch`` messages past the search watermark and move it as far
        as is safe. Idempotent: several nodes may run it at once."""

    @abc.abstractmethod
    async def unindex_messages(self, message_ids: Sequence[int]) -> None:
        """Remove messages from the search index."""

    @abc.abstractmethod
    async def search_messages(self, search: SearchFilter) -> list[Message]:
        """Indexed text messages matching ``search``, newest (highest id) first."""

    async def refresh_search_stats(self) -> None:
        """Re-sample what the search index holds, to plan searches by (the indexer
        calls it now and then)."""
