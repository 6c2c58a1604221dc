"""RFC 6455 frame encoding for the lean WebSocket path, and the close codes it uses.

Server frames are never masked, so a frame built once by :func:`encode_text_frame` can
be written as-is to every connection of a fan-out.
"""

from __future__ import annotations

from typing import Final

try:
    from websockets.speedups import apply_mask
except ImportError:  # pragma: no cover - the C extension ships with every wheel we use
    from websockets.utils import apply_mask

__all__ = [
    "CLOSE_GOING_AWAY",
    "CLOSE_INTERNAL_ERROR",
    "CLOSE_INVALID_DATA",
    "CLOSE_MESSAGE_TOO_BIG",
    "CLOSE_NORMAL",
    "CLOSE_NO_STATUS",
    "CLOSE_PROTOCOL_ERROR",
    "CLOSE_SERVICE_RESTART",
    "CLOSE_TOO_SLOW",
    "CLOSE_UNSUPPORTED_DATA",
    "PING_FRAME",
    "apply_mask",
    "encode_close_frame",
    "encode_text_frame",
    "is_valid_received_close_code",
]

OP_CONT: Final = 0x0
OP_TEXT: Final = 0x1
OP_BINARY: Final = 0x2
OP_CLOSE: Final = 0x8
OP_PING: Final = 0x9
OP_PONG: Final = 0xA

CLOSE_NORMAL: Final = 1000
CLOSE_GOING_AWAY: Final = 1001
CLOSE_PROTOCOL_ERROR: Final = 1002
CLOSE_UNSUPPORTED_DATA: Final = 1003
CLOSE_NO_STATUS: Final = 1005
CLOSE_ABNORMAL: Final = 1006
CLOSE_INVALID_DATA: Final = 1007
CLOSE_MESSAGE_TOO_BIG: Final = 1009
CLOSE_INTERNAL_ERROR: Final = 1011
CLOSE_SERVICE_RESTART: Final = 1012
CLOSE_TOO_SLOW: Final = 4008
"""The client fell behind: its send buffer passed the limit. Reconnect and resume from
the last cursor received; nothing was lost server-side."""

# Codes a peer may put in a Close frame (RFC 6455 section 7.4 and the IANA registry);
# 1005, 1006 and 1015 only ever describe a closure locally.
_RECEIVABLE_CLOSE_CODES: Final = frozenset(
    {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014}
)

# A ping carries no payload: any pong after it proves the peer is alive, and stale pongs
# cannot exist because a peer that misses one deadline is dropped.
PING_FRAME: Final = b"\x89\x00"

_SMALL_TEXT_HEADERS: Final = tuple(bytes((0x81, n)) for n in range(126))


def encode_text_frame(payload: bytes) -> bytes:
    """Return a complete, unmasked, final text frame carrying ``payload``.

    ``payload`` must already be UTF-8 (for example ``orjson.dumps(...)``); it is not
    checked. Build the frame once and pass it to ``Connection.send_frame`` for every
    recipient.
    """
    n = len(payload)
    if n < 126:
        return _SMALL_TEXT_HEADERS[n] + payload
    if n < 0x10000:
        return b"\x81\x7e" + n.to_bytes(2, "big") + payload
    return b"\x81\x7f" + n.to_bytes(8, "big") + payload


def encode_control_frame(opcode: int, payload: bytes) -> bytes:
    """Return an unmasked control frame; ``payload`` must be at most 125 bytes."""
    if len(payload) > 125:
        raise ValueError("control frame payload longer than 125 bytes")
    return bytes((0x80 | opcode, len(payload))) + payload


def encode_close_frame(code: int, reason: str = "") -> bytes:
    """Return a Close frame; ``CLOSE_NO_STATUS`` gives the empty payload that means it."""
    if code == CLOSE_NO_STATUS:
        return b"\x88\x00"
    return encode_control_frame(OP_CLOSE, code.to_bytes(2, "big") + reason.encode())


def is_valid_received_close_code(code: int) -> bool:
    """Whether a peer may send ``code`` in a Close frame."""
    return code in _RECEIVABLE_CLOSE_CODES or 3000 <= code < 5000


def is_valid_sent_close_code(code: int) -> bool:
    """Whether this server may send ``code``: the same set as for peers."""
    return is_valid_received_close_code(code)
