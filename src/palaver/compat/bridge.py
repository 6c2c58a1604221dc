"""What every dialect shares: a hub outlet that turns native frames into dialect frames,
the per-socket state, and small conversions (times, users, online lists).

The hub writes native frames, already wrapped for the WebSocket wire, to an
:class:`~palaver.gateway.client.Outlet`. A dialect socket's outlet unwraps them and
translates them, in order, on one task per socket; the native path is untouched and
pays nothing for the dialects.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
import structlog

from palaver.broker.base import BrokerUnavailable
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Conversation, ConversationKind, ConversationSummary, User
from palaver.gateway.client import Client
from palaver.gateway.frames import CLOSE_TOO_SLOW
from palaver.gateway.hub import Hub
from palaver.services.auth import Principal
from palaver.services.container import Services
from palaver.store.base import CursorUpdate, StoreUnavailable

log = structlog.get_logger(__name__)

# Native frames a dialect socket may have waiting for translation; past this it is
# treated like a native socket whose send buffer overflowed (4008: reconnect).
MAX_PENDING_FRAMES = 10_000
# A frame that cannot be translated: as for a native socket whose catch-up failed.
CLOSE_TRANSLATE_FAILED = 1011

Frame = dict[str, Any]


def payload_of(frame: bytes) -> bytes:
    """The payload of an unmasked server frame built by ``encode_text_frame``."""
    n = frame[1] & 0x7F
    return frame[2 if n < 126 else 4 if n == 126 else 10 :]


def iso(ms: int | None) -> str | None:
    """Milliseconds since the epoch as ISO 8601 UTC (``2024-01-01T12:00:00.000Z``), the
    form the seed systems' JavaScript servers produce with ``toISOString()``."""
    if ms is None:
        return None
    moment = datetime.fromtimestamp(ms / 1000, UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


@dataclass(slots=True)
class Conv:
    """What a dialect needs to know of one of its user's conversations."""

    kind: str
    name: str | None


class DialectSocket:
    """State of one dialect socket (raw WebSocket or Socket.IO)."""

    __slots__ = ("client", "conversations", "opened_at", "outlet", "principal")

    def __init__(self) -> None:
        self.principal: Principal | None = None
        self.client: Client | None = None
        self.outlet: TranslatingOutlet | None = None
        self.conversations: dict[int, Conv] = {}
        self.opened_at = 0

    @property
    def user_id(self) -> int:
        assert self.principal is not None
        return self.principal.user.id

    def remember(self, conversation: Conversation) -> None:
        """Know a conversation the user just entered before the hub's ``joined`` does
        (the next frame of the same client may name it)."""
        self.conversations[conversation.id] = Conv(conversation.kind.value, conversation.name)

    def room_named(self, name: str) -> int | None:
        """The id of a room of this socket's user by name (case-insensitive)."""
        wanted = name.lower()
        for cid, conv in self.conversations.items():
            if conv.kind == ConversationKind.ROOM.value and (conv.name or "").lower() == wanted:
                return cid
        return None


class TranslatingOutlet:
    """A hub outlet that translates each native frame and writes the results in order.

    ``write`` says whether it handed a frame to the open transport (a closing socket
    drops it). A delivery receipt noted while a native frame is translated
    (:func:`mark_delivered`) is queued with ``receipt`` only once every frame of that
    translation was handed over: a message whose frame is dropped because the socket is
    closing (send buffer full, peer gone) is not delivered, and the next connection,
    which resumes after the delivered messages, sends it.
    """

    __slots__ = (
        "_close",
        "_due",
        "_pending",
        "_receipt",
        "_running",
        "_spawn",
        "_translate",
        "_write",
        "closed",
    )

    def __init__(
        self,
        spawn: Callable[[Coroutine[Any, Any, Any]], None],
        translate: Callable[[Frame], Awaitable[list[Any]]],
        write: Callable[[Any], Awaitable[bool]],
        close: Callable[[int, str], None],
        receipt: Callable[[CursorUpdate], None],
    ) -> None:
        self._spawn = spawn
        self._translate = translate
        self._write = write
        self._close = close
        self._receipt = receipt
        self._pending: deque[bytes] = deque()
        # Receipts of the native frame being translated, queued once it is written.
        self._due: list[CursorUpdate] = []
        self._running = False
        self.closed = False

    def send_frame(self, frame: bytes) -> None:
        if self.closed:
            return
        if len(self._pending) >= MAX_PENDING_FRAMES:
            self.close(CLOSE_TOO_SLOW, "too slow; reconnect")
            return
        self._pending.append(frame)
        if not self._running:
            self._running = True
            self._spawn(self._drain())

    def close(self, code: int, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            self._pending.clear()
            self._close(code, reason)

    def deliver_once_written(self, update: CursorUpdate) -> None:
        """Queue ``update`` once the frames of the native frame being translated are
        handed to the open transport; drop it if they are not."""
        self._due.append(update)

    async def _drain(self) -> None:
        due = self._due
        try:
            while self._pending and not self.closed:
                event = orjson.loads(payload_of(self._pending.popleft()))
                due.clear()
                try:
                    outs = await self._translate(event)
                except Exception:
                    # Skipping it would let the next message's receipt cover this one:
                    # the client reconnects and its backlog brings it instead.
                    log.exception("compat.translate_failed", type=event.get("type"))
                    self.close(CLOSE_TRANSLATE_FAILED, "could not translate a frame; reconnect")
                    return
                for out in outs:
                    if self.closed:
                        return
                    if not await self._write(out):
                        # The transport is closing: nothing more will be written.
                        self.closed = True
                        self._pending.clear()
                        return
                for update in due:
                    self._receipt(update)
        finally:
            due.clear()
            self._running = False


def attach(
    hub: Hub,
    sock: DialectSocket,
    outlet: TranslatingOutlet,
    summaries: list[ConversationSummary],
    *,
    backlog: Callable[[ConversationSummary], bool] = lambda s: False,
) -> Client:
    """Register an authenticated dialect socket with the hub and start delivery.

    The seed protocols have no cursors: conversations for which ``backlog`` is false
    start at their last message (live only); the others resume after the account's
    delivery cursor, so messages that arrived while the user was away are sent first.
    """
    assert sock.principal is not None
    for s in summaries:
        sock.conversations[s.conversation.id] = Conv(s.conversation.kind.value, s.conversation.name)
    sock.outlet = outlet
    sock.opened_at = int(datetime.now(UTC).timestamp() * 1000)
    client = hub.attach(outlet, sock.principal, summaries, auto_resume=False)
    sock.client = client
    client.resume({s.conversation.id: s.conversation.last_seq for s in summaries if not backlog(s)})
    return client


def track_membership(sock: DialectSocket, event: Frame) -> None:
    """Keep the socket's view of its conversations current from ``joined``/``left``."""
    kind = event.get("type")
    if kind == "joined":
        conversation = event["conversation"]
        sock.conversations[int(conversation["id"])] = Conv(
            str(conversation["type"]), conversation.get("name")
        )
    elif kind == "left":
        sock.conversations.pop(int(event["conversation_id"]), None)


async def conversation_of(services: Services, sock: DialectSocket, cid: int) -> Conv | None:
    """What the socket knows of a conversation it receives a message from. A message
    of a new conversation can come before the hub's ``joined`` frame (both race from
    the same commit), so an unknown one is read from the store."""
    conv = sock.conversations.get(cid)
    if conv is None:
        conversation = await services.store.get_conversation(cid)
        if conversation is None:
            return None
        sock.remember(conversation)
        conv = sock.conversations[cid]
    return conv


def mark_delivered(sock: DialectSocket, event: Frame) -> None:
    """A message written to a socket whose protocol has no delivery receipt counts as
    delivered once its frames are handed to the open transport (then merged into the
    next receipt flush: no query per message). Called while the socket's outlet
    translates ``event``."""
    if event.get("sender_id") != sock.user_id:
        assert sock.outlet is not None
        sock.outlet.deliver_once_written(
            CursorUpdate(int(event["conversation_id"]), sock.user_id, delivered_seq=event["seq"])
        )


async def online_user_ids(services: Services, hub: Hub, user_id: int) -> list[int]:
    """Users this user may see online (as the native ``get_online_users``), by id."""
    if services.settings.presence_visibility == "everyone":
        candidates = set(hub.by_user)
        candidates.update(await services.store.contacts(user_id))
    else:
        candidates = await services.store.contacts(user_id)
    try:
        presence = await services.broker.get_presence(candidates)
    except BrokerUnavailable:
        return []
    return sorted(uid for uid, status in presence.items() if status != "offline")


async def is_online(services: Services, user_id: int) -> bool:
    """Whether any node has a socket of this user."""
    try:
        presence = await services.broker.get_presence([user_id])
    except BrokerUnavailable:
        return False
    return presence.get(user_id, "offline") != "offline"


def as_palaver_error(exc: Exception) -> PalaverError:
    """Any failure of a dialect command as the error its client is told about."""
    if isinstance(exc, PalaverError):
        return exc
    if isinstance(exc, StoreUnavailable | BrokerUnavailable):
        return PalaverError(ErrorCode.UNAVAILABLE, "storage unavailable; retry", retry_after=1)
    log.error("compat.command_failed", exc_info=exc)
    return PalaverError(ErrorCode.INTERNAL_ERROR, "internal error")


def user_ref(value: object) -> int | str | None:
    """A user reference from a client payload: an id (number or digits) or a name."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


async def join_or_create(services: Services, user: User, name: str) -> Conversation:
    """Join the room called ``name``, creating it first when there is none: in the
    seeds that name rooms freely, a room exists as soon as someone enters it."""
    if not isinstance(name, str) or not name.strip():
        raise PalaverError(ErrorCode.INVALID_FORMAT, "a room name is required", field="room")
    conversations = services.conversations
    try:
        room, _ = await conversations.join_room(user, name.strip())
        return room
    except PalaverError as exc:
        if exc.code is not ErrorCode.NOT_FOUND:
            raise
    try:
        return await conversations.create_room(user, name)
    except PalaverError as exc:
        # Created by someone else in between.
        if exc.code not in (ErrorCode.CONFLICT,):
            raise
    room, _ = await conversations.join_room(user, name.strip())
    return room
