"""Incremental parsing of client frames, and the connection state machine it obeys.

Frames are parsed here by hand rather than by ``websockets.server.ServerProtocol``,
a choice made by measurement (``benchmarks/transport_bench.py micro``, CPU time on the
2-core dev machine): the sans-I/O core takes 3.0 us to receive a 100-byte text frame,
1.0 us to encode one, and 3.9 KB of heap per connection; this parser takes 0.6 us, a
pre-built frame costs nothing per recipient, and a ``Connection`` with its request is
0.7 KB. Masks are removed by websockets' C ``apply_mask``.

What the parser enforces (RFC 6455): client frames masked, RSV bits clear (no
extension is ever negotiated), control frames final and at most 125 bytes,
continuation only inside a fragmented message, text valid UTF-8 (1007), frames and
reassembled messages at most ``max_frame`` bytes (1009). Binary messages are not part
of Palaver's protocol: they close the connection with 1003 (unsupported data). Any
other violation closes with 1002.
"""

from __future__ import annotations

import asyncio
from enum import IntEnum
from typing import TYPE_CHECKING

from palaver.gateway.frames import (
    CLOSE_INVALID_DATA,
    CLOSE_MESSAGE_TOO_BIG,
    CLOSE_NO_STATUS,
    CLOSE_PROTOCOL_ERROR,
    CLOSE_UNSUPPORTED_DATA,
    OP_BINARY,
    OP_CLOSE,
    OP_CONT,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    apply_mask,
    is_valid_received_close_code,
)

if TYPE_CHECKING:
    from palaver.gateway.lean import Gateway

__all__ = ["FrameReader", "State"]


class State(IntEnum):
    """Where a lean connection is; ``MOVES`` lists the transitions allowed from each."""

    OPEN = 1
    CLOSING = 2
    """A Close frame was sent or received; nothing is delivered either way any more."""
    FAILING = 3
    """Closed for a protocol error or a dead peer: input is discarded until TCP ends."""
    CLOSED = 4


OPEN = State.OPEN
CLOSING = State.CLOSING
FAILING = State.FAILING
CLOSED = State.CLOSED

MOVES: dict[State, frozenset[State]] = {
    OPEN: frozenset({CLOSING, FAILING, CLOSED}),
    CLOSING: frozenset({FAILING, CLOSED}),
    FAILING: frozenset({CLOSED}),
    CLOSED: frozenset(),
}


class FrameReader(asyncio.Protocol):
    """The read half of a connection: turns bytes into ``_deliver``/``_on_ping``/
    ``_on_pong``/``_on_peer_close`` calls, or ``_fail`` with the RFC's close code.

    Subclasses provide the slots ``_gw``, ``_state`` and ``_transport`` and the hooks.
    """

    __slots__ = ("_frag", "_need", "_rbuf")

    _gw: Gateway
    _state: State
    _transport: asyncio.Transport

    def __init__(self) -> None:
        self._rbuf: bytearray | None = None  # an incomplete frame, once one straddles reads
        self._need = 0  # bytes _rbuf must hold before parsing is worth retrying
        self._frag: bytearray | None = None  # a fragmented message being reassembled

    def _deliver(self, message: bytes) -> None:
        raise NotImplementedError

    def _on_ping(self, payload: bytes) -> None:
        raise NotImplementedError

    def _on_pong(self) -> None:
        raise NotImplementedError

    def _on_peer_close(self, code: int) -> None:
        raise NotImplementedError

    def _fail(self, code: int, reason: str) -> None:
        raise NotImplementedError

    def data_received(self, data: bytes) -> None:
        if self._state is FAILING:
            return
        rbuf = self._rbuf
        if rbuf is not None:
            rbuf += data
            if len(rbuf) < self._need:
                return
            data = bytes(rbuf)
            self._rbuf = None
        max_frame = self._gw.settings.max_frame
        n = len(data)
        pos = 0
        while pos < n:
            if n - pos < 2:
                self._stash(data, pos, 2)
                return
            b0 = data[pos]
            b1 = data[pos + 1]
            length = b1 & 0x7F
            opcode = b0 & 0x0F
            if not b1 & 0x80:
                return self._fail(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
            if b0 & 0x70:
                return self._fail(CLOSE_PROTOCOL_ERROR, "reserved bits set")
            if opcode >= 8 and (length > 125 or not b0 & 0x80):
                return self._fail(CLOSE_PROTOCOL_ERROR, "invalid control frame")
            if length < 126:
                start = pos + 6
            elif length == 126:
                start = pos + 8
                if start <= n:
                    length = int.from_bytes(data[pos + 2 : pos + 4], "big")
            else:
                start = pos + 14
                if start <= n:
                    length = int.from_bytes(data[pos + 2 : pos + 10], "big")
            if start > n:
                self._stash(data, pos, start - pos)
                return
            # Checked before buffering the payload, so a claimed 2**63 never costs memory.
            if length > max_frame:
                return self._fail(CLOSE_MESSAGE_TOO_BIG, "frame too big")
            end = start + length
            if end > n:
                self._stash(data, pos, end - pos)
                return
            payload = apply_mask(data[start:end], data[start - 4 : start]) if length else b""
            pos = end
            if self._state is not OPEN:
                # Closing: only the peer's Close frame matters now.
                if opcode == OP_CLOSE:
                    self._transport.close()
                    return
                continue
            fin = b0 & 0x80
            if opcode == OP_TEXT and fin and self._frag is None:
                # ASCII is valid UTF-8, and isascii() is far cheaper than a decode.
                if not payload.isascii():
                    try:
                        payload.decode()
                    except UnicodeDecodeError:
                        return self._fail(CLOSE_INVALID_DATA, "invalid UTF-8")
                self._deliver(payload)
            elif opcode >= 8:
                self._on_control_frame(opcode, payload)
            else:
                self._on_fragment(opcode, fin, payload, max_frame)
            if self._state is FAILING or self._transport.is_closing():
                return

    def _stash(self, data: bytes, pos: int, need: int) -> None:
        self._rbuf = bytearray(data[pos:] if pos else data)
        self._need = need

    def _on_fragment(self, opcode: int, fin: int, payload: bytes, max_frame: int) -> None:
        if opcode == OP_CONT:
            if self._frag is None:
                return self._fail(CLOSE_PROTOCOL_ERROR, "unexpected continuation frame")
            self._frag += payload
            if len(self._frag) > max_frame:
                return self._fail(CLOSE_MESSAGE_TOO_BIG, "message too big")
        elif opcode == OP_TEXT:
            if self._frag is not None:
                return self._fail(CLOSE_PROTOCOL_ERROR, "expected continuation frame")
            self._frag = bytearray(payload)
        elif opcode == OP_BINARY:
            return self._fail(CLOSE_UNSUPPORTED_DATA, "binary messages are not supported")
        else:
            return self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")
        if fin:
            message = bytes(self._frag)
            self._frag = None
            try:
                message.decode()
            except UnicodeDecodeError:
                return self._fail(CLOSE_INVALID_DATA, "invalid UTF-8")
            self._deliver(message)

    def _on_control_frame(self, opcode: int, payload: bytes) -> None:
        if opcode == OP_PING:
            self._on_ping(payload)
        elif opcode == OP_PONG:
            self._on_pong()
        elif opcode == OP_CLOSE:
            self._on_close_frame(payload)
        else:
            self._fail(CLOSE_PROTOCOL_ERROR, f"unknown opcode {opcode}")

    def _on_close_frame(self, payload: bytes) -> None:
        if not payload:
            return self._on_peer_close(CLOSE_NO_STATUS)
        if len(payload) == 1:
            return self._fail(CLOSE_PROTOCOL_ERROR, "invalid close frame")
        code = int.from_bytes(payload[:2], "big")
        if not is_valid_received_close_code(code):
            return self._fail(CLOSE_PROTOCOL_ERROR, "invalid close code")
        try:
            payload[2:].decode()
        except UnicodeDecodeError:
            return self._fail(CLOSE_INVALID_DATA, "invalid UTF-8 in close reason")
        self._on_peer_close(code)
