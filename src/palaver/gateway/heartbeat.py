"""The registry of live lean connections and the single timer wheel that serves them all.

One loop-level timer ticks while any connection is live. Each connection sits in at
most one wheel slot, the tick at which it next needs attention (send a ping, check
its pong, give up on a close handshake), so an idle socket costs one set entry and no
task or timer handle of its own.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterator
from typing import TYPE_CHECKING

from palaver.gateway.frames import CLOSE_SERVICE_RESTART

if TYPE_CHECKING:
    from palaver.gateway.transport import Connection

__all__ = ["Registry"]


class Registry:
    """Live connections of one gateway (OPEN or CLOSING), and their timers.

    ``close_all()`` is the graceful-shutdown entry point; ``len(registry)`` counts live
    connections. The other methods are called by connections themselves.
    """

    __slots__ = ("_conns", "_cursor", "_loop", "_next_at", "_tick", "_timer", "_waiters", "_wheel")

    def __init__(self, *, tick: float, horizon: float) -> None:
        """``tick`` is the timer resolution in seconds; ``horizon`` the longest delay
        that will ever be scheduled."""
        self._tick = tick
        self._wheel: list[set[Connection]] = [set() for _ in range(math.ceil(horizon / tick) + 2)]
        self._cursor = 0
        self._conns: set[Connection] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._next_at = 0.0
        self._waiters: list[asyncio.Future[None]] = []

    def __len__(self) -> int:
        return len(self._conns)

    def __iter__(self) -> Iterator[Connection]:
        return iter(list(self._conns))

    def __contains__(self, conn: object) -> bool:
        return conn in self._conns

    def add(self, conn: Connection) -> None:
        self._conns.add(conn)
        if self._timer is None:
            loop = self._loop = asyncio.get_running_loop()
            self._next_at = loop.time() + self._tick
            self._timer = loop.call_at(self._next_at, self._on_tick)

    def discard(self, conn: Connection) -> None:
        self.unschedule(conn)
        self._conns.discard(conn)
        if not self._conns:
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None
            waiters, self._waiters = self._waiters, []
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def schedule(self, conn: Connection, delay: float) -> None:
        """Call ``conn._on_timer()`` in about ``delay`` seconds (one tick of slack)."""
        self.unschedule(conn)
        steps = min(max(1, math.ceil(delay / self._tick)), len(self._wheel) - 1)
        slot = (self._cursor + steps) % len(self._wheel)
        conn._slot = slot
        self._wheel[slot].add(conn)

    def unschedule(self, conn: Connection) -> None:
        if conn._slot >= 0:
            self._wheel[conn._slot].discard(conn)
            conn._slot = -1

    def close_all(self, code: int = CLOSE_SERVICE_RESTART, reason: str = "") -> int:
        """Start the closing handshake on every open connection; return how many.

        1012 (service restart) tells clients to reconnect, possibly elsewhere. Await
        :meth:`wait_closed` to let the handshakes finish.
        """
        closing = 0
        for conn in list(self._conns):
            if conn.is_open:
                conn.close(code, reason)
                closing += 1
        return closing

    async def wait_closed(self) -> None:
        """Wait until no connection is live; bound it with ``asyncio.timeout``."""
        if not self._conns:
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        await waiter

    def _on_tick(self) -> None:
        assert self._loop is not None
        now = self._loop.time()
        wheel = self._wheel
        # Catch up slot by slot when the loop was late, so no deadline is skipped.
        while self._next_at <= now:
            self._cursor = (self._cursor + 1) % len(wheel)
            due = wheel[self._cursor]
            if due:
                wheel[self._cursor] = set()
                for conn in due:
                    conn._slot = -1
                    conn._on_timer()
            self._next_at += self._tick
        if self._conns:
            self._timer = self._loop.call_at(self._next_at, self._on_tick)
        else:
            self._timer = None
