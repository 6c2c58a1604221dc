"""Running Palaver under uvicorn: one process, or several sharing one port."""

from __future__ import annotations

import os
from typing import Any

import uvicorn

from palaver.config import ConfigError, Settings
from palaver.logging import configure_logging

# Seconds in-flight requests get to finish after SIGTERM before connections are cut.
GRACEFUL_SHUTDOWN = 10


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """Options shared by the single- and multi-process paths."""
    from palaver.gateway.serve import ws_protocol_class

    return {
        "host": settings.host,
        "port": settings.port,
        "loop": "uvloop",
        "http": "httptools",
        "ws": ws_protocol_class(),
        "ws_max_size": settings.ws_max_frame,
        "ws_ping_interval": settings.ws_ping_interval,
        "ws_ping_timeout": settings.ws_ping_timeout,
        "lifespan": "on",
        "proxy_headers": False,  # trusted proxies are handled by Palaver's own middleware
        "server_header": False,
        "date_header": True,
        "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN,
        "log_config": None,  # structlog owns logging
        "access_log": True,
    }


def settings_to_env(settings: Settings) -> dict[str, str]:
    """The settings as ``PALAVER_*`` variables, so worker processes rebuild the same
    configuration. The secret stays out: workers read the same key file."""
    env: dict[str, str] = {}
    defaults = Settings()
    for name, value in settings.model_dump().items():
        if name == "secret_key" or value == getattr(defaults, name):
            continue
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"PALAVER_{name.upper()}"] = str(value)
    return env


def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    configure_logging(settings.log_level, settings.log_format)
    options = uvicorn_options(settings)
    if settings.workers > 1:
        if not settings.redis_url:
            raise ConfigError(
                "invalid setting workers = "
                f"{settings.workers}: more than one worker needs redis_url (the in-process "
                "broker cannot reach sockets held by other processes)"
            )
        os.environ.update(settings_to_env(settings))
        uvicorn.run(
            "palaver.http.app:create_app_from_env",
            factory=True,
            workers=settings.workers,
            **options,
        )
        return 0
    from palaver.http.app import create_app

    server = uvicorn.Server(uvicorn.Config(create_app(settings), **options))
    server.run()
    return 0
