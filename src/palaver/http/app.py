"""The ASGI application: REST, operations endpoints, docs and the web client."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI

from palaver import __version__
from palaver.compat.sio import MOUNT_PATH, SocketIODialects
from palaver.config import Settings, ensure_secret, load_settings
from palaver.gateway.serve import GATEWAY_STATE_KEY, gateway_hub, start_gateway, stop_gateway
from palaver.http import (
    auth_routes,
    conversation_routes,
    moderation_routes,
    rich_routes,
    search_routes,
    upload_routes,
    users_routes,
)
from palaver.http.asyncapi import asyncapi_router
from palaver.http.errors import install_error_handlers
from palaver.http.responses import JsonResponse
from palaver.http.web import web_router
from palaver.services.container import Services, build_services


def create_app(settings: Settings, *, services: Services | None = None) -> FastAPI:
    """Build the application for ``settings`` (a secret key is generated if missing).

    The lifespan connects the store and broker, and migrates the schema when
    ``auto_migrate`` is on, so a fresh SQLite file is usable at once.
    """
    settings = ensure_secret(settings)
    services = services or build_services(settings)
    socket_io = SocketIODialects(services)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        await services.start()
        if settings.auto_migrate:
            await services.store.migrate()
        await services.moderation.start()
        gateway = await start_gateway(services)
        socket_io.bind(gateway_hub(gateway))
        services.retention.start()
        services.upload_expiry.start()
        if settings.search_indexer:
            services.indexer.start()
        services.started_at = time.monotonic()
        try:
            yield {"services": services, GATEWAY_STATE_KEY: gateway}
        finally:
            await socket_io.close()
            await stop_gateway(gateway)
            await services.close()

    app = FastAPI(
        title="Palaver",
        version=__version__,
        description="Real-time chat server: REST API. The WebSocket protocol is described "
        "at /asyncapi.json.",
        default_response_class=JsonResponse,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.services = services
    install_error_handlers(app)
    app.include_router(auth_routes.router)
    # Before the users router, whose /api/users/{user_id} would shadow /api/users/me/….
    app.include_router(moderation_routes.router)
    app.include_router(moderation_routes.admin_router)
    app.include_router(users_routes.router)
    app.include_router(conversation_routes.router)
    app.include_router(upload_routes.router)
    app.include_router(rich_routes.router)
    app.include_router(search_routes.router)
    app.include_router(web_router())
    app.include_router(asyncapi_router())
    app.mount(MOUNT_PATH, socket_io.asgi_app())
    _install_ops(app, services)
    return app


def _body_limits(settings: Settings) -> dict[str, int | None]:
    """Paths whose bodies ``body_max_bytes`` does not bound alone."""
    return {
        # Limited while streaming to disk, by upload_max_bytes.
        upload_routes.UPLOAD_PATH: None,
        # Long-polling Socket.IO clients post their frames here, which ws_max_frame
        # bounds (Engine.IO's max_http_buffer_size); a larger one must not be cut short.
        f"{MOUNT_PATH}/": max(settings.body_max_bytes, settings.ws_max_frame),
    }


def _install_ops(app: FastAPI, services: Services) -> None:
    from palaver.http.docs import docs_router
    from palaver.http.middleware import install_middleware
    from palaver.http.ops import ops_router

    async def database() -> None:
        await services.store.ping()

    async def broker() -> None:
        await services.broker.ping()

    app.include_router(
        ops_router(
            checks={"database": database, "broker": broker},
            metrics=services.metrics,
            node_id=services.node_id,
        )
    )
    app.include_router(docs_router())
    install_middleware(
        app, services.settings, services.metrics, body_limits=_body_limits(services.settings)
    )


def create_app_from_env() -> FastAPI:
    """Factory for ``uvicorn --factory`` and worker processes: settings from the
    environment and ``palaver.yaml``."""
    return create_app(load_settings())
