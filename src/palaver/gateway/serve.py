"""How ``/ws`` is served: the WebSocket protocol class handed to uvicorn."""

from __future__ import annotations


def ws_protocol_class() -> str:
    return "websockets-sansio"
