"""The dialect outlet counts a message as delivered only once its frames were handed to
an open transport: what a closing socket drops is sent again on the next connection.

Every dialect whose protocol has no delivery receipt (Chat Service, Monarchs, Mrezhen
and both Socket.IO seeds) notes its messages with ``mark_delivered`` while translating,
so these cases hold for all of them."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import orjson

from palaver.compat.bridge import DialectSocket, Frame, TranslatingOutlet, mark_delivered
from palaver.gateway.frames import encode_text_frame
from palaver.store.base import CursorUpdate

ME = 2
OTHER = 1


class Sock(DialectSocket):
    __slots__ = ()

    @property
    def user_id(self) -> int:
        return ME


def message(seq: int, sender: int = OTHER) -> bytes:
    frame = {"type": "message", "conversation_id": 7, "seq": seq, "sender_id": sender}
    return encode_text_frame(orjson.dumps(frame))


class Harness:
    """An outlet whose transport is open until ``open`` is set false."""

    def __init__(self, outs_per_message: int = 1) -> None:
        self.sock = Sock()
        self.open = True
        self.written: list[Any] = []
        self.receipts: list[CursorUpdate] = []
        self.closed_with: list[int] = []
        self.tasks: list[asyncio.Task[Any]] = []
        self.outs_per_message = outs_per_message
        # Set to close the socket while the frame of that seq is being translated.
        self.close_during: int | None = None
        # Set to fail the translation of that seq after it noted its message.
        self.fail_on: int | None = None
        self.outlet = TranslatingOutlet(
            self.spawn, self.translate, self.write, self.close, self.receipts.append
        )
        self.sock.outlet = self.outlet

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    async def translate(self, event: Frame) -> list[Any]:
        mark_delivered(self.sock, event)
        if event["seq"] == self.fail_on:
            raise RuntimeError("translation failed")
        if event["seq"] == self.close_during:
            # As a dialect that reads the store after noting the message: the socket
            # closes meanwhile (``on_close`` sets ``closed``).
            await asyncio.sleep(0)
            self.outlet.closed = True
        return [(event["seq"], n) for n in range(self.outs_per_message)]

    async def write(self, out: Any) -> bool:
        if not self.open:
            return False
        self.written.append(out)
        return True

    def close(self, code: int, reason: str) -> None:
        self.closed_with.append(code)

    async def settle(self) -> None:
        while not all(task.done() for task in self.tasks):
            await asyncio.gather(*self.tasks)

    def delivered(self) -> list[int | None]:
        return [r.delivered_seq for r in self.receipts]


async def test_written_messages_are_delivered_and_own_messages_are_not() -> None:
    h = Harness()
    for seq, sender in ((1, OTHER), (2, ME), (3, OTHER)):
        h.outlet.send_frame(message(seq, sender))
    await h.settle()
    assert [out[0] for out in h.written] == [1, 2, 3]
    assert h.delivered() == [1, 3]
    assert all((r.conversation_id, r.user_id) == (7, ME) for r in h.receipts)


async def test_frames_dropped_by_a_closing_transport_are_not_delivered() -> None:
    h = Harness()
    for seq in (1, 2):
        h.outlet.send_frame(message(seq))
    await h.settle()
    # The send buffer overflowed (4008) or the peer closed: the transport drops what
    # it is given, and the socket's on_close has not run yet.
    h.open = False
    for seq in (3, 4, 5):
        h.outlet.send_frame(message(seq))
    await h.settle()
    assert h.delivered() == [1, 2]
    assert h.outlet.closed
    h.outlet.send_frame(message(6))
    await h.settle()
    assert h.delivered() == [1, 2]
    assert h.closed_with == []


async def test_a_message_is_delivered_only_when_all_its_frames_are_written() -> None:
    h = Harness(outs_per_message=2)
    h.outlet.send_frame(message(1))
    await h.settle()
    assert h.delivered() == [1]

    class Cut(Harness):
        async def write(self, out: Any) -> bool:
            if out[1] == 1:
                self.open = False
            return await super().write(out)

    cut = Cut(outs_per_message=2)
    cut.outlet.send_frame(message(1))
    await cut.settle()
    assert cut.written == [(1, 0)]
    assert cut.delivered() == []


async def test_a_socket_closed_while_translating_delivers_nothing_more() -> None:
    h = Harness()
    h.close_during = 2
    for seq in (1, 2, 3):
        h.outlet.send_frame(message(seq))
    await h.settle()
    assert [out[0] for out in h.written] == [1]
    assert h.delivered() == [1]


async def test_a_failed_translation_delivers_nothing_for_its_frame() -> None:
    h = Harness()
    h.fail_on = 2
    for seq in (1, 2):
        h.outlet.send_frame(message(seq))
    await h.settle()
    assert [out[0] for out in h.written] == [1]
    assert h.delivered() == [1]
