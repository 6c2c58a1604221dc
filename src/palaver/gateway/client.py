"""One authenticated socket: its cursors, and exactly-once, in-order delivery to it.

Every delivery path (live fan-out, resume, catch-up after a gap) goes through one rule
per conversation: the socket holds a cursor ``c``; a message ``c + 1`` is written and
advances it, anything at or below ``c`` was already written and is dropped, anything
beyond ``c + 1`` means something was missed, and the gap is read from the store before
anything newer is written.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Protocol

import orjson
import structlog

from palaver.core import events
from palaver.services.auth import Principal

if TYPE_CHECKING:
    from palaver.gateway.hub import Hub

log = structlog.get_logger(__name__)

# Messages read from the store per round when catching a socket up.
CATCH_UP_PAGE = 500
# Who keeps a conversation's live messages back when it is not a catch-up: a join
# that has not said ``joined`` yet.
_HOLD = object()
#: How long a catch-up waits for this socket's own send to be answered before writing
#: its message anyway (see :meth:`Client._sends_settled`).
SETTLE_WAIT_SECONDS = 10.0
MAX_EMPTY_ROUNDS = 20


class Outlet(Protocol):
    """What the gateway needs from a transport connection."""

    def send_frame(self, frame: bytes) -> None:
        """Write one complete, already-encoded WebSocket frame (or, where the outlet
        has a true ``writes_runs`` attribute, several back to back)."""

    def close(self, code: int, reason: str = "") -> None:
        """Start the closing handshake (idempotent)."""


class Client:
    """State of one socket of one user, owned by the node's :class:`Hub`."""

    __slots__ = (
        "_catching",
        "_hub",
        "_sending",
        "_settle_waiters",
        "_wanted",
        "closed",
        "cursors",
        "held",
        "last_activity",
        "last_seqs",
        "outlet",
        "principal",
        "runs",
        "synced",
    )

    def __init__(self, hub: Hub, outlet: Outlet, principal: Principal) -> None:
        self._hub = hub
        self.outlet = outlet
        self.principal = principal
        # conversation id -> last sequence number written to this socket
        self.cursors: dict[int, int] = {}
        # conversations being read from the store (by the catch-up whose token is the
        # value) or held back (:data:`_HOLD`), and the highest seq seen meanwhile
        self._catching: dict[int, object] | None = None
        self._wanted: dict[int, int] | None = None
        # conversation id -> this socket's sends there whose ack (or error) is not
        # written yet, and catch-ups waiting for them (see :meth:`_sends_settled`)
        self._sending: dict[int, int] | None = None
        self._settle_waiters: list[asyncio.Future[None]] | None = None
        # Until the client resumes (or the grace period ends), nothing is written: a
        # message sent before the client said where it stands could arrive out of order.
        self.synced = False
        # conversation id -> last sequence number known when the socket opened; only
        # needed until the first resume, then dropped (idle sockets must stay small)
        self.last_seqs: dict[int, int] | None = {}
        self.closed = False
        # An encoded reply waiting to go out with this socket's next write (see
        # :meth:`send_with_next`).
        self.held: bytes | None = None
        self.last_activity = 0.0
        # Whether the outlet takes several frames in one write (a translating outlet
        # reads each frame it is given, so it gets them one by one).
        self.runs: bool = getattr(outlet, "writes_runs", False)

    @property
    def user_id(self) -> int:
        return self.principal.user.id

    def send(self, frame: dict[str, object]) -> None:
        """Encode and write one frame meant for this socket only."""
        if not self.closed:
            self._write(self._hub.encode(orjson.dumps(frame)))
            self._hub.services.metrics.ws_frames_out.inc()

    def send_with_next(self, frame: dict[str, object]) -> None:
        """Like :meth:`send`, but the frame may wait, at most until the event loop's
        next turn, to share a system call with whatever this socket is written next.

        For a send's ack: the sender's own socket is written the message itself a
        moment later, when the commit is announced, and the two then go out in one
        write, ack first, as they would have in two."""
        if self.closed:
            return
        if not self.runs:
            self.send(frame)
            return
        data = self._hub.encode(orjson.dumps(frame))
        self._hub.services.metrics.ws_frames_out.inc()
        if self.held is None:
            self.held = data
            self._hub.release_later(self)
        else:
            self.held += data

    def release(self) -> None:
        """Write the held reply now, if it has not gone out with another frame."""
        held, self.held = self.held, None
        if held is not None and not self.closed:
            self.outlet.send_frame(held)

    def send_encoded(self, frame: bytes) -> None:
        """Write a frame already encoded for the wire (shared by many sockets)."""
        if not self.closed:
            self._write(frame)

    def _write(self, frame: bytes) -> None:
        if self.held is not None:
            # What was held was meant to go first.
            frame, self.held = self.held + frame, None
        self.outlet.send_frame(frame)

    # -- sends in flight -------------------------------------------------------------

    def send_started(self, conversation_id: int) -> None:
        """A send of this socket to the conversation is on its way to the store: its
        message must not reach this socket before its ack (see :meth:`send_settled`)."""
        if self._sending is None:
            self._sending = {}
        self._sending[conversation_id] = self._sending.get(conversation_id, 0) + 1

    def send_settled(self, conversation_id: int) -> None:
        """The send's ack or error is written (or held to go first with the next write)."""
        if self._sending is None or conversation_id not in self._sending:
            return
        left = self._sending[conversation_id] - 1
        if left:
            self._sending[conversation_id] = left
        else:
            del self._sending[conversation_id]
            if not self._sending:
                self._sending = None
        waiters, self._settle_waiters = self._settle_waiters, None
        for waiter in waiters or ():
            if not waiter.done():
                waiter.set_result(None)

    async def _sends_settled(self, conversation_id: int) -> None:
        """Wait until no send of this socket to the conversation awaits its outcome.

        Every send is answered once its transaction ends (or the store gives up); the
        bound is there so that a bug elsewhere costs the ack's order, not delivery."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(SETTLE_WAIT_SECONDS):
                while self._sending is not None and conversation_id in self._sending:
                    waiter = asyncio.get_running_loop().create_future()
                    if self._settle_waiters is None:
                        self._settle_waiters = []
                    self._settle_waiters.append(waiter)
                    await waiter

    # -- delivery --------------------------------------------------------------------

    def offer(self, conversation_id: int, seq: int, frame: bytes) -> None:
        """A live message: write it if it is the next one, catch up if one is missing."""
        cursor = self.cursors.get(conversation_id)
        if cursor is None or self.closed:
            return
        if not self.synced or (self._catching is not None and conversation_id in self._catching):
            if self._wanted is None:
                self._wanted = {}
            self._wanted[conversation_id] = max(self._wanted.get(conversation_id, 0), seq)
            return
        if seq == cursor + 1:
            self.cursors[conversation_id] = seq
            # _write inlined: this is the fan-out's hot path.
            if self.held is not None:
                frame, self.held = self.held + frame, None
            self.outlet.send_frame(frame)
        elif seq > cursor + 1:
            self.catch_up(conversation_id, upto=seq)

    def offer_run(self, conversation_id: int, first: int, last: int, frames: bytes) -> bool:
        """Consecutive live messages ``first..last``, encoded back to back, in one write
        when they are exactly the next ones for this socket. False leaves them to
        :meth:`offer`, one by one (a cursor elsewhere, a catch-up, no resume yet).

        One write instead of one per message: when several messages of a conversation
        commit together (a busy room's burst), every member's socket costs one system
        call for all of them."""
        if (
            not self.runs
            or self.cursors.get(conversation_id) != first - 1
            or self.closed
            or not self.synced
            or (self._catching is not None and conversation_id in self._catching)
        ):
            return False
        self.cursors[conversation_id] = last
        if self.held is not None:
            frames, self.held = self.held + frames, None
        self.outlet.send_frame(frames)
        return True

    def catch_up(self, conversation_id: int, upto: int = 0) -> None:
        """Read what this socket is missing in a conversation from the store."""
        if self._catching is None:
            self._catching = {}
        if self._wanted is None:
            self._wanted = {}
        self._wanted[conversation_id] = max(self._wanted.get(conversation_id, 0), upto)
        if conversation_id in self._catching:
            return  # the catch-up or hold there delivers up to what is wanted
        token = object()
        self._catching[conversation_id] = token
        self._hub.spawn(self._catch_up(conversation_id, token))

    def hold(self, conversation_id: int) -> None:
        """Keep a conversation's live messages back until :meth:`unhold` (they are
        noted, as during a catch-up, and read from the store then). A catch-up of it
        still running (from before a leave) stops: it must not write before the join
        is told."""
        if self._catching is None:
            self._catching = {}
        self._catching[conversation_id] = _HOLD

    def unhold(self, conversation_id: int, upto: int = 0) -> None:
        """Deliver what was held back, and anything up to ``upto``."""
        if self._catching is None or self._catching.get(conversation_id) is not _HOLD:
            return
        upto = max(upto, self._release(conversation_id, _HOLD))
        if not self.closed and upto > self.cursors.get(conversation_id, upto):
            self.catch_up(conversation_id, upto=upto)

    def _release(self, conversation_id: int, owner: object) -> int:
        """Stop reading or holding a conversation back, if ``owner`` still does; return
        the newest seq noted for it. What other conversations are owed (noted before
        the socket resumed, say) stays, and so does this one's for a new owner."""
        if self._catching is None or self._catching.get(conversation_id) is not owner:
            return 0
        del self._catching[conversation_id]
        if not self._catching:
            self._catching = None
        wanted = self._wanted.pop(conversation_id, 0) if self._wanted else 0
        if not self._wanted:
            self._wanted = None
        return wanted

    def _owns(self, conversation_id: int, token: object) -> bool:
        """Whether the catch-up with ``token`` may still write ``conversation_id``."""
        return (
            not self.closed
            and conversation_id in self.cursors
            and self._catching is not None
            and self._catching.get(conversation_id) is token
        )

    async def _catch_up(self, conversation_id: int, token: object) -> None:
        try:
            await self._read_missing(conversation_id, token)
        except Exception as exc:
            # Closing with "try again" keeps the guarantee: the client resumes from its
            # cursor; staying open with a hole would break it.
            log.warning("catch_up.failed", error=str(exc), conversation_id=conversation_id)
            self._hub.drop(self, 1011, "catch-up failed; reconnect and resume")
        finally:
            self._release(conversation_id, token)

    async def _read_missing(self, conversation_id: int, token: object) -> None:
        store = self._hub.store
        empty_rounds = 0
        while self._owns(conversation_id, token):
            cursor = self.cursors[conversation_id]
            page = await store.get_messages(conversation_id, after_seq=cursor, limit=CATCH_UP_PAGE)
            moved = False
            for message in page:
                if not self._owns(conversation_id, token):
                    return
                cursor = self.cursors[conversation_id]
                if message.seq <= cursor:
                    continue
                if message.sender_id == self.user_id and self._sending is not None:
                    # Perhaps this socket's own send, committed but not yet answered
                    # (the store answered this read first): its ack goes first.
                    await self._sends_settled(conversation_id)
                sender = (
                    await self._hub.users.get(message.sender_id)
                    if message.sender_id is not None
                    else None
                )
                if self.cursors.get(conversation_id) != cursor:
                    # The socket moved on while the sender was looked up (a resume, a
                    # leave): writing now could repeat a message, move the cursor back
                    # or track a conversation left. Read again from where it stands.
                    moved = True
                    break
                if message.seq > cursor + 1:
                    # Retention removed what lies between: say so instead of waiting.
                    self.send(events.gap(conversation_id, cursor + 1, message.seq - 1))
                self.cursors[conversation_id] = message.seq
                self.send(events.message(message, sender))
            if moved:
                continue
            wanted = self._wanted.get(conversation_id, 0) if self._wanted else 0
            if len(page) < CATCH_UP_PAGE and self.cursors.get(conversation_id, 0) >= wanted:
                return
            if not page:
                # The wake-up promised a message the store does not show yet (a replica
                # lagging, say): wait briefly, and give up after a second; the next
                # message or the client's next resume brings it.
                empty_rounds += 1
                if empty_rounds > MAX_EMPTY_ROUNDS:
                    return
                await asyncio.sleep(0.05)

    def resume(self, cursors: dict[int, int]) -> None:
        """Start (or restart) delivery from the client's cursors.

        A conversation the client names resumes after its cursor, unless this socket
        already wrote further (those frames are on their way, in order); one it does not
        name resumes after the default the socket opened with.
        """
        known = self.last_seqs or {}
        for conversation_id, current in self.cursors.items():
            given = cursors.get(conversation_id)
            if given is not None:
                current = max(current, given) if self.synced else given
                self.cursors[conversation_id] = current
            wanted = self._wanted.get(conversation_id, 0) if self._wanted else 0
            if current < max(known.get(conversation_id, 0), wanted):
                self.catch_up(conversation_id, upto=wanted)
        self.synced = True
        self.last_seqs = None
        if not self._catching:
            self._catching = self._wanted = None

    # -- membership ------------------------------------------------------------------

    def track(self, conversation_id: int, cursor: int) -> None:
        """Start delivering a conversation after ``cursor`` (catching up if behind)."""
        if conversation_id not in self.cursors:
            self.cursors[conversation_id] = cursor

    def untrack(self, conversation_id: int) -> None:
        self.cursors.pop(conversation_id, None)
