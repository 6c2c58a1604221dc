"""The paths the WebSocket gateway serves, for answering plain HTTP requests there."""

from __future__ import annotations

from functools import cache

from palaver.gateway.serve import NATIVE_PATHS


@cache
def socket_paths() -> frozenset[str]:
    """``/ws`` and the raw paths of the other protocols (each also upgrades only)."""
    from palaver.compat import chat_service, monarchs, mrezhen

    return NATIVE_PATHS | {monarchs.PATH, chat_service.PATH, mrezhen.PATH}
