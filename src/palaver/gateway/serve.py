"""How ``/ws`` is served: the lean protocol class handed to uvicorn, and the per-process
gateway the application's lifespan builds and places in uvicorn's app state."""

from __future__ import annotations

from palaver.gateway.frames import encode_text_frame
from palaver.gateway.hub import Hub
from palaver.gateway.lean import Gateway, LeanSettings, LeanWebSocketProtocol
from palaver.gateway.native import NativeHandler
from palaver.services.container import Services

GATEWAY_STATE_KEY = "palaver.gateway"
NATIVE_PATHS = frozenset({"/ws"})


class PalaverWebSocketProtocol(LeanWebSocketProtocol):
    """uvicorn's ``ws`` protocol for Palaver: the gateway comes from the lifespan state
    of the process it runs in, so one importable class serves one process or many
    workers, and nothing lives in a module global."""

    __slots__ = ()

    @property
    def gateway(self) -> Gateway | None:  # type: ignore[override]
        gateway = self._app_state.get(GATEWAY_STATE_KEY)
        return gateway if isinstance(gateway, Gateway) else None


def ws_protocol_class() -> type[LeanWebSocketProtocol]:
    """The class for ``uvicorn.Config(ws=...)``."""
    return PalaverWebSocketProtocol


async def start_gateway(services: Services) -> Gateway:
    """Build and start this process's hub and native handler."""
    settings = services.settings
    hub = Hub(services, encode_text_frame)
    await hub.start()
    lean = LeanSettings(
        paths=NATIVE_PATHS,
        max_frame=settings.ws_max_frame,
        send_buffer_limit=settings.ws_send_buffer,
        ping_interval=settings.ws_ping_interval,
        ping_timeout=settings.ws_ping_timeout,
    )
    from uvicorn.config import WS_PROTOCOLS
    from uvicorn.importer import import_from_string

    delegate = import_from_string(WS_PROTOCOLS["websockets-sansio"] or "")
    from palaver.compat.raw_paths import dialect_handlers

    dialects = dialect_handlers(services, hub)
    native = NativeHandler(services, hub)
    # A dialect mounted at /ws replaces the native protocol there, for clients that
    # cannot change their URL; it stays at its own path too.
    main = native if settings.ws_dialect == "native" else dialects[settings.ws_dialect][1]
    gateway = Gateway(main, lean, delegate)
    for path, handler in dialects.values():
        gateway.mount(path, handler)
    return gateway


def gateway_hub(gateway: Gateway) -> Hub:
    """The hub every handler of ``gateway`` shares."""
    hub = getattr(gateway.handler, "hub", None)
    assert isinstance(hub, Hub)
    return hub


async def stop_gateway(gateway: Gateway) -> None:
    """Tell every socket to reconnect (1012) and stop the hub."""
    gateway.close_all()
    await gateway_hub(gateway).close()
