"""The base of the dialects served on the lean WebSocket path (like ``/ws``).

A subclass says how the handshake authenticates (:meth:`RawDialect.authorize`), which
conversations it backfills, how a client frame is handled and how a native frame is
translated. Frames of one socket are handled one after another, as on ``/ws``, so two
sends from one client are committed in the order they were sent.
"""

from __future__ import annotations

import abc
import contextlib
from collections import deque
from typing import Any

import orjson
import structlog

from palaver.broker.base import BrokerUnavailable
from palaver.compat.bridge import (
    DialectSocket,
    Frame,
    TranslatingOutlet,
    as_palaver_error,
    attach,
    track_membership,
)
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import ConversationSummary
from palaver.gateway.hub import Hub
from palaver.gateway.lean import Accept, Connection, GatewayHandler, Reject, Request
from palaver.gateway.native import CONNECTION_COUNTER_TTL, MAX_PENDING_COMMANDS, _origin_allowed
from palaver.http.middleware import client_ip
from palaver.services.auth import Principal
from palaver.services.container import Services
from palaver.services.tokens import bearer_from_header
from palaver.store.base import StoreUnavailable

log = structlog.get_logger(__name__)


class RawSocket(DialectSocket):
    """Per-connection state (``Connection.state``) of a raw dialect socket."""

    __slots__ = ("conn", "extra", "ip", "queue", "running", "summaries")

    def __init__(self, ip: str) -> None:
        super().__init__()
        # The address counted against ``max_connections_per_ip`` ("" when not counted).
        self.ip = ip
        self.conn: Connection | None = None
        self.summaries: list[ConversationSummary] | None = None
        self.queue: deque[Frame] | None = None
        self.running = False
        # What the dialect keeps per socket (current room, joined rooms...).
        self.extra: dict[str, Any] = {}

    def send(self, frame: Frame) -> bool:
        """Write a frame; whether it was handed to the open connection (one that is
        closing drops it)."""
        conn = self.conn
        if conn is None or not conn.is_open:
            return False
        conn.send_text(orjson.dumps(frame))
        return True


class RawDialect(GatewayHandler):
    """A seed protocol on the lean WebSocket path, over the node's hub."""

    # Whether the handshake must carry a valid token (else the client logs in later).
    token_required = True

    def __init__(self, services: Services, hub: Hub) -> None:
        self.services = services
        self.hub = hub
        self.settings = services.settings

    # -- handshake -------------------------------------------------------------------

    def token_of(self, request: Request) -> str | None:
        return bearer_from_header(request.headers.get("authorization")) or request.query.get(
            "token"
        )

    def refuse(self, status: int, code: str, message: str) -> Accept | Reject:
        """How a refused handshake is answered (an HTTP error unless overridden)."""
        return Reject(status, code, message)

    async def authorize(self, request: Request) -> Accept | Reject:
        if not _origin_allowed(request, self.settings.ws_allowed_origins):
            return Reject(403, ErrorCode.FORBIDDEN.value, "origin not allowed")
        principal: Principal | None = None
        token = self.token_of(request)
        if token:
            try:
                principal = await self.services.auth.authenticate(token)
            except PalaverError as exc:
                status = 401 if exc.http_status == 401 else 403
                return self.refuse(status, exc.code.value, exc.message)
            except StoreUnavailable:
                return Reject(503, ErrorCode.UNAVAILABLE.value, "database unavailable; retry")
        elif self.token_required:
            return self.refuse(401, ErrorCode.UNAUTHORIZED.value, "an access token is required")
        scope = {
            "type": "websocket",
            "client": request.client,
            "headers": [(k.lower().encode(), v.encode()) for k, v in request.headers.raw_items()],
        }
        ip = client_ip(scope, self.settings.trusted_proxies)
        broker = self.services.broker
        try:
            count = await broker.incr_connections(f"conn:{ip}", 1, CONNECTION_COUNTER_TTL)
            if count > self.settings.max_connections_per_ip:
                await broker.incr_connections(f"conn:{ip}", -1, CONNECTION_COUNTER_TTL)
                return Reject(
                    429,
                    ErrorCode.RATE_LIMITED.value,
                    "too many connections from this address",
                    headers=[("Retry-After", "10")],
                )
        except BrokerUnavailable:
            return Reject(503, ErrorCode.UNAVAILABLE.value, "broker unavailable; retry")
        sock = RawSocket(ip)
        if principal is not None:
            sock.principal = principal
            sock.summaries = await self.services.store.list_user_conversations(principal.user.id)
        self.prepare(sock, request)
        return Accept(state=sock)

    def prepare(self, sock: RawSocket, request: Request) -> None:
        """Read what the dialect needs from the upgrade request (query, headers)."""

    # -- lifecycle -------------------------------------------------------------------

    def on_open(self, conn: Connection) -> None:
        sock: RawSocket = conn.state  # type: ignore[assignment]
        sock.conn = conn
        conn.request.forget_head()
        if sock.summaries is not None:
            summaries, sock.summaries = sock.summaries, None
            self.attach(sock, summaries)
        self.opened(sock)

    def attach(self, sock: RawSocket, summaries: list[ConversationSummary]) -> None:
        """Register the (now authenticated) socket with the hub."""

        async def write(frame: Frame) -> bool:
            return sock.send(frame)

        def close(code: int, reason: str) -> None:
            if sock.conn is not None:
                sock.conn.close(code, reason)

        async def translate(event: Frame) -> list[Frame]:
            track_membership(sock, event)
            return await self.translate(sock, event)

        outlet = TranslatingOutlet(
            self.hub.spawn, translate, write, close, self.services.messaging.queue_receipt
        )
        attach(self.hub, sock, outlet, summaries, backlog=self.backlog)

    def opened(self, sock: RawSocket) -> None:
        """The socket is open (and attached, when the handshake authenticated it)."""

    def on_close(self, conn: Connection, code: int) -> None:
        sock: RawSocket = conn.state  # type: ignore[assignment]
        if sock.outlet is not None:
            sock.outlet.closed = True
        if sock.client is not None:
            self.hub.detach(sock.client)
        if sock.ip:
            self.hub.spawn(self._release(sock.ip))

    async def _release(self, ip: str) -> None:
        with contextlib.suppress(BrokerUnavailable):
            await self.services.broker.incr_connections(f"conn:{ip}", -1, CONNECTION_COUNTER_TTL)

    # -- frames ----------------------------------------------------------------------

    def on_text(self, conn: Connection, data: bytes) -> None:
        sock: RawSocket = conn.state  # type: ignore[assignment]
        if not conn.is_open:
            return
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError:
            self.fail(sock, PalaverError(ErrorCode.INVALID_JSON, "frame is not valid JSON"))
            return
        if not isinstance(raw, dict):
            self.fail(sock, PalaverError(ErrorCode.INVALID_FORMAT, "frame is not a JSON object"))
            return
        kind = raw.get("type")
        if not isinstance(kind, str) or not kind:
            self.fail(sock, PalaverError(ErrorCode.MISSING_TYPE, "frame has no type"))
            return
        if sock.client is not None:
            self.hub.touch(sock.client)
        self.enqueue(sock, raw)

    def enqueue(self, sock: RawSocket, raw: Frame) -> None:
        """Queue a frame to be handled after those before it."""
        if sock.queue is None:
            sock.queue = deque()
        if len(sock.queue) >= MAX_PENDING_COMMANDS:
            self.fail(sock, PalaverError(ErrorCode.RATE_LIMITED, "too many frames in flight"))
            return
        sock.queue.append(raw)
        if not sock.running:
            sock.running = True
            self.hub.spawn(self._drain(sock))

    async def _drain(self, sock: RawSocket) -> None:
        try:
            while sock.queue and sock.conn is not None and sock.conn.is_open:
                frame = sock.queue.popleft()
                try:
                    await self.handle(sock, frame)
                except Exception as exc:
                    self.fail(sock, as_palaver_error(exc), frame)
        finally:
            sock.running = False
            if not sock.queue:
                sock.queue = None

    @abc.abstractmethod
    async def handle(self, sock: RawSocket, frame: Frame) -> None:
        """Run one client frame (an object with a non-empty string ``type``)."""

    @abc.abstractmethod
    def fail(self, sock: RawSocket, error: PalaverError, frame: Frame | None = None) -> None:
        """Tell the client a frame was refused."""

    @abc.abstractmethod
    async def translate(self, sock: RawSocket, event: Frame) -> list[Frame]:
        """The dialect frames (possibly none) for one native frame."""

    def backlog(self, summary: ConversationSummary) -> bool:
        """Whether messages missed while away are sent on connect (default: live only)."""
        return False

    def require_client(self, sock: RawSocket) -> None:
        if sock.client is None:
            raise PalaverError(ErrorCode.UNAUTHORIZED, "log in first")
