"""Operational endpoints: ``/health``, ``/healthz``, ``/info`` and ``/metrics``.

Everything they report comes in through :func:`ops_router`'s arguments::

    app.include_router(
        ops_router(
            metrics=metrics,
            checks={"database": store.ping, "broker": broker.ping},
            node_id=settings.node_id,
        )
    )

A check is an async callable taking no arguments; it passes by returning and fails
by raising (or returning ``False``) or by taking longer than ``check_timeout``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Literal

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel

import palaver
from palaver.logging import get_logger
from palaver.metrics import Metrics

__all__ = ["CheckResult", "HealthCheck", "HealthReport", "InfoReport", "ops_router"]

HealthCheck = Callable[[], Awaitable[object]]

log = get_logger(__name__)

# Load balancers usually give up on a health probe after 5 s; a 2 s budget per check
# (run concurrently) leaves room to answer "degraded" before that.
DEFAULT_CHECK_TIMEOUT = 2.0
_NO_STORE = {"Cache-Control": "no-store"}


class CheckResult(BaseModel):
    """One dependency's health: ``error`` names the failure (exception type or timeout)."""

    status: Literal["ok", "fail"]
    latency_ms: float
    error: str | None = None


class HealthReport(BaseModel):
    status: Literal["ok", "degraded"]
    version: str
    uptime_seconds: float
    checks: dict[str, CheckResult]


class InfoReport(BaseModel):
    name: str
    version: str
    node_id: str
    started_at: datetime
    uptime_seconds: float


def default_node_id() -> str:
    """``host-pid``: unique among the processes of a deployment."""
    return f"{socket.gethostname()}-{os.getpid()}"


async def _run_check(name: str, check: HealthCheck, limit: float) -> CheckResult:
    start = time.perf_counter()
    error: str | None = None
    try:
        async with asyncio.timeout(limit):
            if await check() is False:
                error = "check failed"
    except TimeoutError:
        error = f"timed out after {limit:g} s"
    except Exception as exc:
        # The endpoint is public: it names the exception type only; the message, which
        # may mention hosts or users, goes to the log.
        error = type(exc).__name__
        log.warning("health.check_failed", check=name, error=str(exc), exc_type=error)
    latency_ms = round((time.perf_counter() - start) * 1000, 3)
    if error is not None:
        return CheckResult(status="fail", latency_ms=latency_ms, error=error)
    return CheckResult(status="ok", latency_ms=latency_ms)


def ops_router(
    *,
    metrics: Metrics | None = None,
    checks: Mapping[str, HealthCheck] | None = None,
    node_id: str | None = None,
    version: str = palaver.__version__,
    check_timeout: float = DEFAULT_CHECK_TIMEOUT,
    clock: Callable[[], float] = time.monotonic,
) -> APIRouter:
    """Build the router; uptime counts from this call.

    ``checks`` maps a name (``database``, ``broker``) to its :data:`HealthCheck`; they
    run concurrently on every health request. ``/metrics`` is only served when
    ``metrics`` is given. ``clock`` exists for tests.
    """
    router = APIRouter(tags=["operations"])
    checks = dict(checks or {})
    node = node_id or default_node_id()
    started = clock()
    started_at = datetime.now(UTC)

    def uptime() -> float:
        return round(clock() - started, 3)

    async def health() -> JSONResponse:
        names = list(checks)
        results = await asyncio.gather(
            *(_run_check(name, checks[name], check_timeout) for name in names)
        )
        healthy = all(result.status == "ok" for result in results)
        report = HealthReport(
            status="ok" if healthy else "degraded",
            version=version,
            uptime_seconds=uptime(),
            checks=dict(zip(names, results, strict=True)),
        )
        return JSONResponse(
            report.model_dump(mode="json", exclude_none=True),
            status_code=200 if healthy else 503,
            headers=_NO_STORE,
        )

    for path in ("/health", "/healthz"):
        router.add_api_route(
            path,
            health,
            methods=["GET"],
            response_model=HealthReport,
            responses={503: {"model": HealthReport, "description": "A dependency failed"}},
            summary="Liveness and dependency health",
            name=f"ops_{path.lstrip('/')}",
        )

    @router.get("/info", response_model=InfoReport, summary="Server name, version and node")
    async def info() -> InfoReport:
        return InfoReport(
            name="Palaver",
            version=version,
            node_id=node,
            started_at=started_at,
            uptime_seconds=uptime(),
        )

    if metrics is not None:
        registry = metrics

        @router.get(
            "/metrics",
            response_class=Response,
            summary="Prometheus metrics",
            responses={200: {"content": {"text/plain": {}}}},
        )
        async def prometheus() -> Response:
            body, content_type = registry.render()
            return Response(body, media_type=content_type, headers=_NO_STORE)

    return router
