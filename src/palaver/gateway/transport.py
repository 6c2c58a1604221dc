"""One open lean WebSocket: what a gateway handler sends through, and the asyncio
protocol that keeps it honest (closing handshake, heartbeat, slow-consumer cut-off).

Parsing lives in :mod:`palaver.gateway.reader`; this module decides what each frame,
timer and transport event means for the connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import socket
from typing import TYPE_CHECKING

from palaver.gateway.frames import (
    CLOSE_ABNORMAL,
    CLOSE_INTERNAL_ERROR,
    CLOSE_NORMAL,
    CLOSE_SERVICE_RESTART,
    CLOSE_TOO_SLOW,
    OP_PONG,
    PING_FRAME,
    encode_close_frame,
    encode_control_frame,
    encode_text_frame,
    is_valid_sent_close_code,
)
from palaver.gateway.reader import CLOSED, CLOSING, FAILING, MOVES, OPEN, FrameReader, State

if TYPE_CHECKING:
    from palaver.gateway.handshake import Request
    from palaver.gateway.lean import Gateway

__all__ = ["Connection", "State"]

logger = logging.getLogger("palaver.gateway")

# Heartbeat phases, advanced by the registry's timer wheel.
_PING_DUE = 0
_AWAITING_PONG = 1
_PONG_RECEIVED = 2


class Connection(FrameReader):
    """An open WebSocket connection on the lean path.

    Handlers use :meth:`send_frame` (fan-out: one pre-built frame for every recipient),
    :meth:`send_text`, :meth:`close`, ``request`` (path, query, headers, client,
    origin), ``state`` (from ``Accept.state``) and ``buffered_bytes``. The asyncio
    protocol callbacks are for the transport only.
    """

    __slots__ = (
        "_close_code",
        "_gw",
        "_hb",
        "_slot",
        "_state",
        "_transport",
        "_uvicorn_connections",
        "request",
        "state",
    )

    def __init__(
        self,
        transport: asyncio.Transport,
        gateway: Gateway,
        request: Request,
        state: object,
        uvicorn_connections: set[object] | None = None,
    ) -> None:
        super().__init__()
        self._transport = transport
        self._gw = gateway
        self.request = request
        self.state = state
        self._state = OPEN
        self._close_code: int | None = None
        self._hb = _PING_DUE
        self._slot = -1
        self._uvicorn_connections = uvicorn_connections

    # -- public API -----------------------------------------------------------------

    #: Frames may be handed over several at a time, back to back (see ``Client.offer_run``).
    writes_runs = True

    def send_frame(self, frame: bytes) -> None:
        """Write a frame from :func:`~palaver.gateway.frames.encode_text_frame` (or
        several, back to back).

        Never blocks. Does nothing once the connection is closing. When the transport's
        buffer passes ``send_buffer_limit`` the connection closes with 4008 and the
        handler's ``on_close`` is called soon after, never from inside this call.
        """
        if self._state is OPEN:
            self._transport.write(frame)

    def send_text(self, data: bytes) -> None:
        """Send one text message; ``data`` must already be UTF-8 encoded."""
        if self._state is OPEN:
            self._transport.write(encode_text_frame(data))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Start the closing handshake; a no-op unless the connection is open.

        ``on_close(conn, code)`` follows soon after. The socket is dropped when the
        client answers, or after ``close_timeout`` if it does not.
        """
        if self._state is not OPEN:
            return
        if not is_valid_sent_close_code(code):
            raise ValueError(f"close code {code} may not be sent")
        if len(reason.encode()) > 123:
            raise ValueError("close reason longer than 123 bytes")
        self._start_closing(code, reason)

    def pause_reading(self) -> None:
        """Stop reading from the socket (inbound backpressure) until resumed."""
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    @property
    def buffered_bytes(self) -> int:
        """Bytes accepted by :meth:`send_frame` but not yet handed to the kernel."""
        return self._transport.get_write_buffer_size()

    @property
    def is_open(self) -> bool:
        return self._state is OPEN

    @property
    def close_code(self) -> int | None:
        """The code passed to ``on_close``, once the connection has left OPEN."""
        return self._close_code

    @property
    def path(self) -> str:
        return self.request.path

    @property
    def query(self) -> dict[str, str]:
        return self.request.query

    @property
    def remote_address(self) -> tuple[str, int] | None:
        return self.request.client

    def __repr__(self) -> str:
        return f"<Connection {self.request.path} {self._state.name} {self.remote_address}>"

    # -- lifecycle, called by LeanWebSocketProtocol and the registry --------------------

    def start(self, pending: bytes) -> None:
        """Register, tell the handler, then process bytes that came with the handshake."""
        gw = self._gw
        self._transport.set_write_buffer_limits(high=gw.settings.send_buffer_limit)
        sock = self._transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            # Chat frames are small and latency-bound: never let Nagle hold one back
            # behind an unacknowledged one (asyncio skips this for inherited sockets).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        gw.registry.add(self)
        if self._uvicorn_connections is not None:
            self._uvicorn_connections.add(self)
        if gw.settings.ping_interval is not None:
            gw.registry.schedule(self, self._next_ping_delay())
        try:
            gw.handler.on_open(self)
        except Exception:
            logger.exception("on_open failed for %r", self)
            self._fail(CLOSE_INTERNAL_ERROR, "internal error")
            return
        if pending:
            self.data_received(pending)

    def shutdown(self) -> None:
        """uvicorn's graceful shutdown: close with 1012 (service restart)."""
        if self._state is OPEN:
            self._start_closing(CLOSE_SERVICE_RESTART, "server shutting down")
        elif self._state is not CLOSED:
            self._transport.close()

    def _next_ping_delay(self) -> float:
        interval = self._gw.settings.ping_interval
        assert interval is not None
        # +-10% jitter so pings of clients that reconnected together spread out.
        return interval * (0.9 + 0.2 * random.random())

    def _on_timer(self) -> None:
        if self._state is OPEN:
            settings = self._gw.settings
            if self._hb == _AWAITING_PONG:
                # The peer is gone or stuck: nothing we write would reach it.
                logger.info("ping timeout, dropping %r", self)
                self._move(FAILING)
                self._notify_closed(CLOSE_INTERNAL_ERROR)
                self._transport.abort()
            elif self._hb == _PONG_RECEIVED:
                self._hb = _PING_DUE
                delay = self._next_ping_delay() - settings.ping_timeout
                self._gw.registry.schedule(self, delay)
            else:
                self._hb = _AWAITING_PONG
                self._transport.write(PING_FRAME)
                self._gw.registry.schedule(self, settings.ping_timeout)
        elif self._state is not CLOSED:
            # The peer did not finish the closing handshake (or stopped reading).
            self._transport.abort()

    def _move(self, new: State) -> None:
        if new not in MOVES[self._state]:
            raise RuntimeError(f"refused move {self._state.name} -> {new.name} on {self!r}")
        self._state = new

    def _start_closing(self, code: int, reason: str) -> None:
        self._move(CLOSING)
        self._notify_closed(code)
        self._transport.write(encode_close_frame(code, reason))
        self._gw.registry.schedule(self, self._gw.settings.close_timeout)

    def _fail(self, code: int, reason: str) -> None:
        """Fail the connection (RFC 6455 7.1.7): Close frame, then end TCP."""
        if self._state is FAILING or self._state is CLOSED:
            return
        if self._state is OPEN:
            self._start_closing(code, reason)
        self._move(FAILING)
        self._rbuf = self._frag = None
        # Half-close and keep draining input: closing with unread bytes (the rest of an
        # oversized frame) would send a RST that can destroy our Close frame in flight.
        if self._transport.can_write_eof():
            self._transport.write_eof()
        else:
            self._transport.close()

    def _notify_closed(self, code: int) -> None:
        if self._close_code is None:
            self._close_code = code
            # Deferred so the handler is never re-entered from its own send loop.
            asyncio.get_running_loop().call_soon(self._gw.dispatch_close, self, code)

    # -- asyncio.Protocol ---------------------------------------------------------------

    def pause_writing(self) -> None:
        if self._state is OPEN:
            logger.info("send buffer over limit, closing %r", self)
            self._move(CLOSING)
            self._notify_closed(CLOSE_TOO_SLOW)
            # Writing from inside the transport's own write() is not safe on every
            # event loop, so the Close frame is queued on the next loop iteration.
            loop = asyncio.get_running_loop()
            loop.call_soon(self._write_close, CLOSE_TOO_SLOW, "send buffer full, resume")
            self._gw.registry.schedule(self, self._gw.settings.close_timeout)

    def resume_writing(self) -> None:
        pass

    def _write_close(self, code: int, reason: str) -> None:
        if self._state is CLOSING:
            self._transport.write(encode_close_frame(code, reason))

    def eof_received(self) -> bool | None:
        # Half-closed by the peer without a Close frame: close our side too.
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._move(CLOSED)
        self._gw.registry.discard(self)
        if self._uvicorn_connections is not None:
            self._uvicorn_connections.discard(self)
        self._rbuf = self._frag = None
        self._notify_closed(CLOSE_ABNORMAL)

    # -- FrameReader hooks ---------------------------------------------------------------

    def _deliver(self, message: bytes) -> None:
        try:
            self._gw.handler.on_text(self, message)
        except Exception:
            logger.exception("on_text failed for %r", self)
            self._fail(CLOSE_INTERNAL_ERROR, "internal error")

    def _on_ping(self, payload: bytes) -> None:
        self._transport.write(encode_control_frame(OP_PONG, payload))

    def _on_pong(self) -> None:
        if self._hb == _AWAITING_PONG:
            self._hb = _PONG_RECEIVED

    def _on_peer_close(self, code: int) -> None:
        # Echo the code, then close: the server drops TCP first (RFC 6455 7.1.1).
        self._move(CLOSING)
        self._notify_closed(code)
        self._transport.write(encode_close_frame(code))
        self._transport.close()
        self._gw.registry.schedule(self, self._gw.settings.close_timeout)
