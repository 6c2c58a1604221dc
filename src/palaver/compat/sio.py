"""One Socket.IO endpoint (``/socket.io/``) for two dialects whose event names do not
overlap: the Distributed Real-Time Chat Platform's (``join_room``, ``send_message``) and
the Scalable Chat Application's (``conversation:join``, ``message:send``, ...).

Each Socket.IO socket is a client of the node's hub like any native socket: the broker
wakes every node and each node feeds its own sockets, so no Socket.IO adapter is
needed between nodes. Long-polling keeps per-node session state, so a load balancer
must send one client to one node (the nginx configuration hashes the client address);
the websocket transport needs no such stickiness.

A socket speaks seed 003 until its first seed 002 event (``join_room``,
``send_message``) makes it a seed 002 socket: Socket.IO clients ignore events they
have no listener for, and a seed 003 client must hear of a new direct conversation
before it knows to join it.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs, urlsplit

import socketio
import structlog

from palaver.compat import distributed, scalable
from palaver.compat.bridge import (
    Frame,
    TranslatingOutlet,
    as_palaver_error,
    attach,
    track_membership,
)
from palaver.compat.sio_base import SEED_002, SEED_003, Handler, SioSocket
from palaver.core.errors import ErrorCode
from palaver.gateway.hub import Hub
from palaver.services.container import Services
from palaver.services.tokens import bearer_from_header

log = structlog.get_logger(__name__)

MOUNT_PATH = "/socket.io"


def _token(environ: dict[str, Any], auth: object) -> str | None:
    if isinstance(auth, dict) and isinstance(auth.get("token"), str) and auth["token"]:
        token: str = auth["token"]
        return bearer_from_header(token) or token
    header = bearer_from_header(environ.get("HTTP_AUTHORIZATION"))
    if header:
        return header
    values = parse_qs(environ.get("QUERY_STRING", "")).get("token")
    return values[0] if values else None


class SocketIODialects:
    """The Socket.IO server and its bridge to the hub (bound once the hub runs)."""

    def _origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        if origin is None:
            return True  # not a browser: cross-site forgery needs one
        if origin in self.services.settings.ws_allowed_origins:
            return True
        host = str(environ.get("HTTP_HOST", ""))
        return bool(host) and urlsplit(origin).netloc.lower() == host.lower()

    def __init__(self, services: Services) -> None:
        self.services = services
        settings = services.settings
        self.hub: Hub | None = None
        self.sockets: dict[str, SioSocket] = {}
        self.server = socketio.AsyncServer(
            async_mode="asgi",
            # The same rule as /ws: the server's own origin or ws_allowed_origins.
            cors_allowed_origins=self._origin_allowed,
            max_http_buffer_size=settings.ws_max_frame,
            ping_interval=settings.ws_ping_interval,
            ping_timeout=settings.ws_ping_timeout,
            # One event of a socket at a time, in arrival order: two sends of one client
            # are committed in the order they were sent, as on every other transport.
            async_handlers=False,
            logger=False,
            engineio_logger=False,
        )
        self.server.on("connect", self._connect)
        self.server.on("disconnect", self._disconnect)
        for name, handler in distributed.EVENTS.items():
            self._on(name, SEED_002, handler)
        for name, handler in scalable.EVENTS.items():
            self._on(name, SEED_003, handler)

    def asgi_app(self) -> socketio.ASGIApp:
        """The ASGI application to mount at :data:`MOUNT_PATH`."""
        return socketio.ASGIApp(self.server, socketio_path=None)

    def bind(self, hub: Hub) -> None:
        self.hub = hub

    async def close(self) -> None:
        for sid in list(self.sockets):
            await self.server.disconnect(sid)

    # -- connections ----------------------------------------------------------------

    async def _connect(self, sid: str, environ: dict[str, Any], auth: object = None) -> None:
        hub = self.hub
        if hub is None:
            raise socketio.exceptions.ConnectionRefusedError(
                "UNAVAILABLE", {"code": ErrorCode.UNAVAILABLE.value}
            )
        token = _token(environ, auth)
        if not token:
            raise socketio.exceptions.ConnectionRefusedError(
                "an access token is required", {"code": ErrorCode.UNAUTHORIZED.value}
            )
        try:
            principal = await self.services.auth.authenticate(token)
            summaries = await self.services.store.list_user_conversations(principal.user.id)
        except Exception as exc:
            error = as_palaver_error(exc)
            raise socketio.exceptions.ConnectionRefusedError(
                error.message, {"code": error.code.value}
            ) from None
        sock = SioSocket(sid, str(environ.get("HTTP_HOST", "")))
        sock.principal = principal
        self.sockets[sid] = sock

        async def write(out: tuple[str, Frame]) -> bool:
            # Gone from ``sockets`` as soon as Socket.IO tells of the disconnect: an
            # emit to it would be dropped.
            if sid not in self.sockets:
                return False
            await self.server.emit(out[0], out[1], to=sid)
            return True

        def close(code: int, reason: str) -> None:
            hub.spawn(self.server.disconnect(sid))

        async def translate(event: Frame) -> list[tuple[str, Frame]]:
            track_membership(sock, event)
            if sock.dialect == SEED_002:
                return await distributed.translate(self.services, sock, event)
            return await scalable.translate(self.services, sock, event)

        receipt = self.services.messaging.queue_receipt
        outlet = TranslatingOutlet(hub.spawn, translate, write, close, receipt)
        attach(hub, sock, outlet, summaries)

    async def _disconnect(self, sid: str, *args: object) -> None:
        sock = self.sockets.pop(sid, None)
        if sock is None:
            return
        if sock.outlet is not None:
            sock.outlet.closed = True
        if sock.client is not None and self.hub is not None:
            self.hub.detach(sock.client)

    # -- events ---------------------------------------------------------------------

    def _on(self, name: str, dialect: str, handler: Handler) -> None:
        async def run(sid: str, data: Any = None) -> Any:
            sock = self.sockets.get(sid)
            if sock is None or sock.client is None:
                return None
            if sock.dialect is None:
                sock.dialect = dialect
            if self.hub is not None:
                self.hub.touch(sock.client)
            try:
                return await handler(self.services, sock, data)
            except Exception as exc:
                error = as_palaver_error(exc)
                body = {"code": error.code.value, "message": error.message}
                await self.server.emit("error", body, to=sid)
                return {"ok": False, "success": False, "error": body}

        self.server.on(name, run)
