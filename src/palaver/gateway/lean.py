"""The lean WebSocket path: ``/ws`` served natively on uvicorn's port, bypassing ASGI.

uvicorn's HTTP protocol hands every ``Upgrade: websocket`` request to
``Config.ws_protocol_class``. :func:`lean_ws_protocol_factory` returns such a class:
for the paths it owns it completes the handshake itself and calls a
:class:`GatewayHandler`; for every other path it instantiates uvicorn's own WebSocket
protocol and hands it the transport, so ASGI WebSocket routes keep working::

    protocol = lean_ws_protocol_factory(handler, paths={"/ws"})
    server = uvicorn.Server(uvicorn.Config(app, ws=protocol))
    ...
    protocol.gateway.close_all()          # graceful shutdown: 1012 to every client

Why: the ASGI path spends a task, queues and dict-shaped events on every socket and
every send. Measured with ``benchmarks/transport_bench.py`` on the 2-core dev machine
(server on cpu 0, clients on cpu 1): 6.6-6.8 us of server CPU per delivered frame here
against 12-13 us through ASGI, and 1.9-2.3 KB of RSS per idle socket against 31 KB. In
the shared fan-out benchmark the Node.js ``ws`` relay spends 9.3-9.5 us per delivery
and this path, relaying the same protocol, 6.8-7.3 us. Most of what remains is the
kernel's TCP send: one ``write()`` per recipient with TCP_NODELAY costs about 5 us.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Collection
from dataclasses import dataclass, replace
from typing import cast

from palaver.gateway.frames import CLOSE_SERVICE_RESTART, CLOSE_TOO_SLOW, encode_text_frame
from palaver.gateway.handshake import Accept, Headers, Reject, Request
from palaver.gateway.heartbeat import Registry
from palaver.gateway.transport import Connection, State
from palaver.gateway.upgrade import LeanWebSocketProtocol, resolve_delegate

__all__ = [
    "CLOSE_SERVICE_RESTART",
    "CLOSE_TOO_SLOW",
    "Accept",
    "Connection",
    "Gateway",
    "GatewayHandler",
    "Headers",
    "LeanSettings",
    "LeanWebSocketProtocol",
    "Reject",
    "Request",
    "State",
    "encode_text_frame",
    "lean_ws_protocol_factory",
]

logger = logging.getLogger("palaver.gateway")


class GatewayHandler(abc.ABC):
    """What the lean path calls. Every method runs on the event loop thread.

    Per connection the order is ``authorize``, then ``on_open``, any number of
    ``on_text``, and exactly one ``on_close``. An exception in ``on_open`` or
    ``on_text`` is logged and closes the connection with 1011.
    """

    @abc.abstractmethod
    async def authorize(self, request: Request) -> Accept | Reject:
        """Decide before the handshake completes: ``Reject`` answers with an HTTP error
        and a JSON body, so a bad token never sees a frame."""

    def on_open(self, conn: Connection) -> None:  # noqa: B027 - optional hook
        """The connection is open; ``conn.state`` holds ``Accept.state``."""

    @abc.abstractmethod
    def on_text(self, conn: Connection, data: bytes) -> None:
        """A complete text message, valid UTF-8, at most ``max_frame`` bytes.

        Called synchronously from the read path: parse and schedule async work, do not
        block.
        """

    def on_close(self, conn: Connection, code: int) -> None:  # noqa: B027 - optional hook
        """The connection left OPEN. ``code`` is the client's close code, the one this
        side sent (4008 for a slow consumer, 1012 for ``close_all``), 1011 after a ping
        timeout, or 1006 when TCP dropped without a Close frame. Called soon after the
        event, never from inside a ``send_frame`` or ``close`` call."""


@dataclass(frozen=True, slots=True)
class LeanSettings:
    """Tunables of one gateway; see :func:`lean_ws_protocol_factory`."""

    paths: frozenset[str] = frozenset({"/ws"})
    max_frame: int = 64 * 1024
    # Beyond the kernel's socket buffer (Linux autotunes it up to 4 MB), which absorbs
    # catch-up bursts first: what a stalled client may pin in this process.
    send_buffer_limit: int = 256 * 1024
    # Home routers and mobile carriers drop idle TCP flows after 30-60 s.
    ping_interval: float | None = 25.0
    ping_timeout: float = 20.0
    close_timeout: float = 5.0
    allowed_origins: frozenset[str] | None = None
    max_request_head: int = 16 * 1024

    def __post_init__(self) -> None:
        if self.max_frame < 126 or self.send_buffer_limit < 1:
            raise ValueError("max_frame must be >= 126 and send_buffer_limit positive")
        if self.ping_interval is not None and self.ping_interval <= 0:
            raise ValueError("ping_interval must be positive or None")
        if self.ping_timeout <= 0 or self.close_timeout <= 0:
            raise ValueError("ping_timeout and close_timeout must be positive")


class Gateway:
    """The per-process state shared by every lean connection: handler, settings,
    registry (``close_all``, ``wait_closed``, ``len``) and the delegate class.

    Other handlers may be mounted at other paths (:meth:`mount`); each gets a gateway
    of its own, so a connection's hot path never asks which handler it belongs to.
    """

    __slots__ = ("delegate_class", "handler", "registry", "routes", "settings")

    def __init__(
        self,
        handler: GatewayHandler,
        settings: LeanSettings,
        delegate_class: type[asyncio.Protocol] | None,
    ) -> None:
        self.handler = handler
        self.settings = settings
        self.delegate_class = delegate_class
        delays = [settings.ping_timeout, settings.close_timeout]
        if settings.ping_interval is not None:
            delays.append(settings.ping_interval)
        # A quarter of the shortest deadline, so timeouts fire within 25% of their
        # value; at most 1 s so production wheels stay ~30 slots.
        tick = min(1.0, max(0.005, min(delays) / 4))
        self.registry = Registry(tick=tick, horizon=max(delays) * 1.1 + tick)
        self.routes: dict[str, Gateway] = {}

    def mount(self, path: str, handler: GatewayHandler) -> Gateway:
        """Serve ``path`` with another handler (same settings otherwise)."""
        if path in self.settings.paths or path in self.routes:
            raise ValueError(f"{path} is already served")
        settings = replace(self.settings, paths=frozenset({path}))
        gateway = Gateway(handler, settings, self.delegate_class)
        self.routes[path] = gateway
        return gateway

    def route(self, path: str) -> Gateway | None:
        """The gateway serving ``path``, or None (the delegate's)."""
        if path in self.settings.paths:
            return self
        return self.routes.get(path)

    def close_all(self, code: int = CLOSE_SERVICE_RESTART, reason: str = "") -> int:
        """Close every open lean connection (default 1012), on every mounted path too;
        see ``Registry.close_all``."""
        closed = self.registry.close_all(code, reason)
        for gateway in self.routes.values():
            closed += gateway.close_all(code, reason)
        return closed

    def dispatch_close(self, conn: Connection, code: int) -> None:
        try:
            self.handler.on_close(conn, code)
        except Exception:
            logger.exception("on_close failed for %r", conn)


def lean_ws_protocol_factory(
    handler: GatewayHandler,
    *,
    paths: Collection[str] = ("/ws",),
    max_frame: int = 64 * 1024,
    send_buffer_limit: int = 256 * 1024,
    ping_interval: float | None = 25.0,
    ping_timeout: float = 20.0,
    close_timeout: float = 5.0,
    allowed_origins: Collection[str] | None = None,
    delegate: str | type[asyncio.Protocol] | None = "auto",
) -> type[LeanWebSocketProtocol]:
    """Return a protocol class for ``uvicorn.Config(ws=...)`` bound to ``handler``.

    ``paths``: request paths served natively (exact match, no root_path).
    ``max_frame``: largest frame and reassembled message accepted (else 1009).
    ``send_buffer_limit``: bytes a connection may have queued in user space before it
    is closed with 4008 (``CLOSE_TOO_SLOW``).
    ``ping_interval`` (None disables; jittered +-10%) and ``ping_timeout``: heartbeat.
    ``close_timeout``: how long to wait for the client's side of a closing handshake.
    ``allowed_origins``: exact ``Origin`` values accepted (None accepts any); a
    request without Origin (not a browser) is accepted.
    ``delegate``: uvicorn ``ws`` name or class for the other paths ("auto" is uvicorn's
    default; None answers them 404).

    The returned class has a ``gateway`` attribute (:class:`Gateway`): the registry of
    live connections and ``close_all(code=1012)`` for graceful shutdown.
    """
    settings = LeanSettings(
        paths=frozenset(paths),
        max_frame=max_frame,
        send_buffer_limit=send_buffer_limit,
        ping_interval=ping_interval,
        ping_timeout=ping_timeout,
        close_timeout=close_timeout,
        allowed_origins=frozenset(allowed_origins) if allowed_origins is not None else None,
    )
    gateway = Gateway(handler, settings, resolve_delegate(delegate))
    namespace = {"__slots__": (), "gateway": gateway, "__module__": __name__}
    return cast(
        "type[LeanWebSocketProtocol]",
        type("BoundLeanWebSocketProtocol", (LeanWebSocketProtocol,), namespace),
    )
