"""The raw WebSocket dialects and the paths they are served at."""

from __future__ import annotations

from palaver.compat import chat_service, monarchs, mrezhen
from palaver.compat.raw import RawDialect
from palaver.gateway.hub import Hub
from palaver.services.container import Services


def dialect_handlers(services: Services, hub: Hub) -> dict[str, tuple[str, RawDialect]]:
    """``ws_dialect`` name -> (path, handler), every handler on the node's hub."""
    return {
        "monarchs": (monarchs.PATH, monarchs.MonarchsHandler(services, hub)),
        "chat-service": (chat_service.PATH, chat_service.ChatServiceHandler(services, hub)),
        "mrezhen": (mrezhen.PATH, mrezhen.MrezhenHandler(services, hub)),
    }
