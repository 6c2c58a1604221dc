"""Running Palaver under uvicorn: one process, or several sharing one port.

With ``workers`` above one, uvicorn's supervisor binds the port and spawns fresh Python
processes that each build the application with :func:`create_worker_app` from the
``PALAVER_*`` environment this process exports (see :func:`settings_to_env`). Each
worker has its own hub and gateway; Redis carries wake-ups between them.
"""

from __future__ import annotations

import contextlib
import gc
import os
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from types import FrameType
from typing import Any

import uvicorn
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palaver.config import ConfigError, Settings, load_settings
from palaver.logging import configure_logging, get_logger
from palaver.metrics import MULTIPROC_ENV, mark_process_dead

# Seconds in-flight requests get to finish after SIGTERM before connections are cut.
GRACEFUL_SHUTDOWN = 10
# Seconds a worker may take to answer the supervisor's first health ping. A worker
# answers only once it has imported the application, which takes several seconds on a
# busy machine; uvicorn's default (5 s) then kills and respawns workers in a loop.
WORKER_HEALTHCHECK_TIMEOUT = 60
# What workers read as their config file: nothing. Every setting reaches them through
# the environment, so a ./palaver.yaml in the worker's directory cannot disagree with
# the file (or flags) the supervisor was started with.
_NO_CONFIG_FILE = os.devnull

log = get_logger(__name__)


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
    """Every setting as a ``PALAVER_*`` variable, so worker processes rebuild exactly the
    same configuration whatever files they could see.

    The secret key is included: it may come from a config file the workers do not read,
    and workers minting tokens with another key would reject every token the supervisor's
    configuration issues. The environment of a process is readable by its owner only,
    like the key file.
    """
    env: dict[str, str] = {"PALAVER_CONFIG": _NO_CONFIG_FILE}
    for name, value in settings.model_dump().items():
        if isinstance(value, list):
            value = ",".join(str(v) for v in value)
        env[f"PALAVER_{name.upper()}"] = str(value)
    return env


def create_worker_app() -> ASGIApp:
    """Factory for worker processes (``uvicorn --factory``): settings from the
    environment, and logging configured in this process (uvicorn configures none in
    workers when ``log_config`` is ``None``, so their logs would be lost)."""
    from palaver.http.app import create_app

    settings = load_settings()
    configure_logging(settings.log_level, settings.log_format)
    return _mark_dead_on_shutdown(_tune_gc_on_startup(create_app(settings)))


def tune_gc() -> None:
    """Keep the cyclic garbage collector's full collections short in a serving process.

    What startup built (modules, routes, schemas: about 170,000 objects) lives as long
    as the process, so it moves to the permanent generation and full collections stop
    walking it. With 100 closed-loop senders, full collections came about every two
    seconds and paused the event loop for 50 to 300 ms each (the largest ack latency
    was 106-137 ms); frozen, the largest was 20-25 ms. A wider young generation
    (10,000) saved some CPU as well but cost a quarter more memory per idle
    connection, so the thresholds stay CPython's."""
    gc.collect()
    gc.freeze()


class _OnLifespan:
    """Calls ``action`` when the application sends the lifespan message ``event``
    (just before passing it on to the server)."""

    def __init__(self, app: ASGIApp, event: str, action: Callable[[], None]) -> None:
        self.app = app
        self.event = event
        self.action = action

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "lifespan":
            await self.app(scope, receive, send)
            return

        async def send_and_act(message: Message) -> None:
            if message["type"] == self.event:
                self.action()
            await send(message)

        await self.app(scope, receive, send_and_act)


def _tune_gc_on_startup(app: ASGIApp) -> ASGIApp:
    """:func:`tune_gc` once the application has started (serving processes only: tests
    build many applications in one process and must not freeze their objects)."""
    return _OnLifespan(app, "lifespan.startup.complete", lambda: tune_gc())


def _mark_dead_on_shutdown(app: ASGIApp) -> ASGIApp:
    """Drop this worker's live gauges from the shared metrics directory once its
    application has shut down. It cannot wait for exit hooks: uvicorn ends a worker by
    re-raising SIGTERM, which runs none."""
    return _OnLifespan(app, "lifespan.shutdown.complete", lambda: mark_process_dead(os.getpid()))


def serve(settings: Settings) -> int:
    """Serve until SIGINT/SIGTERM; returns the process exit code."""
    configure_logging(settings.log_level, settings.log_format)
    options = uvicorn_options(settings)
    if settings.workers > 1:
        return _serve_workers(settings, options)
    from palaver.http.app import create_app

    server = uvicorn.Server(uvicorn.Config(_tune_gc_on_startup(create_app(settings)), **options))
    with _exit_cleanly_on_signals():
        server.run()
    return 0


def _ignore(_sig: int, _frame: FrameType | None) -> None:
    """Swallow the signal uvicorn raises again once it has shut down."""


@contextlib.contextmanager
def _exit_cleanly_on_signals() -> Iterator[None]:
    """Make SIGTERM and SIGINT end the process with status 0 after the graceful
    shutdown: uvicorn restores the handlers it found and raises the signal again, which
    with the default handlers kills the process (status 143, or a KeyboardInterrupt),
    so supervisors and ``make run`` would report a clean stop as a failure."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _ignore) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _serve_workers(settings: Settings, options: dict[str, Any]) -> int:
    if not settings.redis_url:
        raise ConfigError(
            "invalid setting workers = "
            f"{settings.workers}: more than one worker needs redis_url (the in-process "
            "broker cannot reach sockets held by other processes)"
        )
    # Workers are spawned, not forked: each starts a fresh interpreter that reads its
    # environment before importing prometheus_client, so the directory set here puts
    # them in multiprocess mode and any worker answers /metrics for all. A fresh
    # directory per run: samples left by an earlier run would be counted again.
    metrics_dir = tempfile.mkdtemp(prefix="palaver-metrics-")
    os.environ.update(settings_to_env(settings))
    os.environ[MULTIPROC_ENV] = metrics_dir
    log.info("server.workers", workers=settings.workers, metrics_dir=metrics_dir)
    try:
        uvicorn.run(
            "palaver.server:create_worker_app",
            factory=True,
            workers=settings.workers,
            timeout_worker_healthcheck=WORKER_HEALTHCHECK_TIMEOUT,
            **options,
        )
    finally:
        shutil.rmtree(metrics_dir, ignore_errors=True)
    return 0
