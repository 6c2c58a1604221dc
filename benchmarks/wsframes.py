"""The one piece of WebSocket framing the benchmark clients share: finding a server
frame in a receive buffer (servers never mask)."""

from __future__ import annotations


def frame_at(buf: bytes | bytearray) -> tuple[int, int, int] | None:
    """``(opcode, payload start, payload end)`` of the frame at the start of ``buf``,
    or ``None`` while it has not fully arrived."""
    if len(buf) < 2:
        return None
    length = buf[1] & 0x7F
    offset = 2
    if length == 126:
        if len(buf) < 4:
            return None
        length = int.from_bytes(buf[2:4], "big")
        offset = 4
    elif length == 127:
        if len(buf) < 10:
            return None
        length = int.from_bytes(buf[2:10], "big")
        offset = 10
    end = offset + length
    if len(buf) < end:
        return None
    return buf[0] & 0x0F, offset, end
