"""The uvicorn side of the lean path: the ``ws`` protocol class that receives every
WebSocket upgrade, completes the handshake for the paths the gateway owns, and hands
every other one to uvicorn's own WebSocket protocol.

uvicorn builds the request head again from what its HTTP parser saw, instantiates this
class with ``config``, ``server_state`` and ``app_state``, calls ``connection_made``
and ``data_received(head)``, and only then installs it on the transport.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any, ClassVar, cast

from uvicorn.config import WS_PROTOCOLS, Config
from uvicorn.importer import import_from_string
from uvicorn.server import ServerState

from palaver.gateway.handshake import (
    Accept,
    HandshakeError,
    Reject,
    Request,
    check_upgrade,
    encode_headers,
    switching_protocols,
)
from palaver.gateway.transport import Connection

if TYPE_CHECKING:
    from palaver.gateway.lean import Gateway

__all__ = ["LeanWebSocketProtocol", "resolve_delegate"]

logger = logging.getLogger("palaver.gateway")


class LeanWebSocketProtocol(asyncio.Protocol):
    """uvicorn's ``ws`` protocol: performs the handshake, then hands the transport to a
    :class:`Connection` (owned paths) or to uvicorn's own protocol (other paths).

    Use a subclass from :func:`lean_ws_protocol_factory`; this base class, without a
    gateway, delegates every path.
    """

    gateway: ClassVar[Gateway | None] = None

    __slots__ = ("_app_state", "_buf", "_config", "_server_state", "_target", "_task", "_transport")

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self._config = config
        self._server_state = server_state
        self._app_state = app_state
        self._buf = bytearray()
        self._target: asyncio.Protocol | None = None
        self._task: asyncio.Task[None] | None = None
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        if self._target is not None:
            self._target.data_received(data)
            return
        self._buf += data
        if self._task is not None:
            # A client may not send frames before our 101; bound what it can make us hold.
            if self.gateway is not None and len(self._buf) > self.gateway.settings.max_frame:
                self._abort()
            return
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self._buf) > self._max_head():
                self._respond_and_close(HandshakeError(431, "Request head too large").render())
            return
        head = bytes(self._buf[: end + 4])
        del self._buf[: end + 4]
        request = Request(head, self._transport)
        gateway = self.gateway
        if gateway is not None:
            gateway = gateway.route(request.path)
        if gateway is None:
            self._delegate(head)
            return
        request.cache_headers(True)
        try:
            accept_key = check_upgrade(request)
            origins = gateway.settings.allowed_origins
            # Browsers always send Origin; other clients cannot be cross-site forged.
            if origins is not None and request.origin not in (None, *origins):
                raise HandshakeError(403, "Origin not allowed")
        except HandshakeError as exc:
            self._respond_and_close(exc.render(self._server_state.default_headers))
            return
        loop = asyncio.get_running_loop()
        self._task = loop.create_task(self._authorize(gateway, request, accept_key))

    def eof_received(self) -> bool | None:
        if self._target is not None:
            return self._target.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._target is not None:
            self._target.connection_lost(exc)
        elif self._task is not None:
            self._task.cancel()

    def pause_writing(self) -> None:
        if self._target is not None:
            self._target.pause_writing()

    def resume_writing(self) -> None:
        if self._target is not None:
            self._target.resume_writing()

    def _max_head(self) -> int:
        gateway = self.gateway
        return gateway.settings.max_request_head if gateway is not None else 16 * 1024

    def _delegate(self, head: bytes) -> None:
        transport = self._transport
        assert transport is not None
        delegate_class = self.gateway.delegate_class if self.gateway else resolve_delegate("auto")
        if delegate_class is None:
            self._respond_and_close(HandshakeError(404, "Not Found").render())
            return
        delegate = delegate_class(  # type: ignore[call-arg]
            config=self._config, server_state=self._server_state, app_state=self._app_state
        )
        delegate.connection_made(transport)
        self._target = delegate
        delegate.data_received(head + bytes(self._buf))
        self._buf = bytearray()
        # uvicorn installs this object as the transport's protocol right after this call
        # returns; swap the delegate in afterwards and forward anything in between.
        asyncio.get_running_loop().call_soon(transport.set_protocol, delegate)

    async def _authorize(self, gateway: Gateway, request: Request, accept_key: str) -> None:
        transport = self._transport
        assert transport is not None
        default_headers = self._server_state.default_headers
        try:
            verdict = await gateway.handler.authorize(request)
            if isinstance(verdict, Accept):
                if verdict.subprotocol and verdict.subprotocol not in request.subprotocols:
                    raise ValueError(f"subprotocol {verdict.subprotocol!r} was not offered")
                extra = [*default_headers, *encode_headers(verdict.headers)]
                response = switching_protocols(accept_key, verdict.subprotocol, extra)
            else:
                response = verdict.render(default_headers)
        except Exception:
            logger.exception("authorize failed for %r", request)
            verdict = Reject(500, "INTERNAL_ERROR", "Internal error")
            response = verdict.render(default_headers)
        finally:
            self._task = None
        if transport.is_closing():
            return
        if isinstance(verdict, Reject):
            logger.debug("WebSocket %s rejected with %d", request.path, verdict.status)
            self._respond_and_close(response)
            return
        transport.write(response)
        request.cache_headers(False)
        connections = cast("set[object]", self._server_state.connections)
        conn = Connection(transport, gateway, request, verdict.state, connections)
        self._target = conn
        transport.set_protocol(conn)
        pending, self._buf = bytes(self._buf), bytearray()
        conn.start(pending)

    def _respond_and_close(self, response: bytes) -> None:
        assert self._transport is not None
        self._transport.write(response)
        self._transport.close()

    def _abort(self) -> None:
        assert self._transport is not None
        self._transport.abort()


def resolve_delegate(
    delegate: str | type[asyncio.Protocol] | None,
) -> type[asyncio.Protocol] | None:
    """A uvicorn ``ws`` setting ("auto", "websockets-sansio", "wsproto", an import string
    or a class) as the protocol class to delegate to; None stays None."""
    if not isinstance(delegate, str):
        return delegate
    target = WS_PROTOCOLS.get(delegate, delegate)
    return cast("type[asyncio.Protocol] | None", target and import_from_string(target))
