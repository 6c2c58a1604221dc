from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import textwrap
from collections.abc import Mapping
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

import palaver
from palaver.config import Settings
from palaver.http.middleware import install_middleware
from palaver.http.ops import HealthCheck, ops_router
from palaver.metrics import MULTIPROC_ENV, Metrics


async def passing() -> None:
    return None


async def failing() -> None:
    raise ConnectionRefusedError("connect to db.internal:5432 as palaver failed")


async def hanging() -> None:
    await asyncio.sleep(60)


async def says_no() -> bool:
    return False


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make_app(
    settings: Settings,
    metrics: Metrics | None,
    checks: Mapping[str, HealthCheck] | None = None,
    **kwargs: object,
) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    if metrics is not None:
        install_middleware(app, settings, metrics)
    app.include_router(ops_router(metrics=metrics, checks=checks, **kwargs))  # type: ignore[arg-type]

    @app.get("/api/users/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    return app


def client_for(app: FastAPI) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://palaver.test")


@pytest.mark.parametrize("path", ["/health", "/healthz"])
async def test_health_ok(settings: Settings, path: str) -> None:
    app = make_app(settings, Metrics(), {"database": passing, "broker": passing})
    async with client_for(app) as client:
        response = await client.get(path)
    assert response.status_code == 200
    assert response.headers["cache-control"] == "no-store"
    body = response.json()
    assert body["status"] == "ok"
    assert body["version"] == palaver.__version__
    assert body["uptime_seconds"] >= 0
    assert set(body["checks"]) == {"database", "broker"}
    for check in body["checks"].values():
        assert check["status"] == "ok"
        assert check["latency_ms"] >= 0
        assert "error" not in check


async def test_health_without_checks_is_ok(settings: Settings) -> None:
    async with client_for(make_app(settings, None)) as client:
        response = await client.get("/healthz")
    assert response.status_code == 200
    assert response.json()["checks"] == {}


@pytest.mark.parametrize("path", ["/health", "/healthz"])
async def test_health_degraded_when_a_check_fails(settings: Settings, path: str) -> None:
    app = make_app(settings, None, {"database": failing, "broker": passing})
    async with client_for(app) as client:
        response = await client.get(path)
    assert response.status_code == 503
    body = response.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] == "fail"
    assert body["checks"]["database"]["error"] == "ConnectionRefusedError"
    assert body["checks"]["broker"]["status"] == "ok"
    # The failure's text names internal hosts: it goes to the log, not to the public.
    assert "db.internal" not in response.text


async def test_health_check_times_out(settings: Settings) -> None:
    app = make_app(
        settings,
        None,
        {"database": passing, "broker": hanging, "other": says_no},
        check_timeout=0.05,
    )
    async with client_for(app) as client:
        response = await asyncio.wait_for(client.get("/health"), 2)
    assert response.status_code == 503
    checks = response.json()["checks"]
    assert checks["broker"] == {
        "status": "fail",
        "latency_ms": checks["broker"]["latency_ms"],
        "error": "timed out after 0.05 s",
    }
    assert checks["broker"]["latency_ms"] < 1000
    assert checks["other"]["error"] == "check failed"
    assert checks["database"]["status"] == "ok"


async def test_info(settings: Settings) -> None:
    clock = FakeClock()
    app = make_app(settings, None, node_id="node-a", clock=clock)
    clock.now += 12.5
    async with client_for(app) as client:
        response = await client.get("/info")
    assert response.status_code == 200
    body = response.json()
    assert body["name"] == "Palaver"
    assert body["version"] == palaver.__version__
    assert body["node_id"] == "node-a"
    assert body["uptime_seconds"] == 12.5
    assert body["started_at"].endswith("Z")


async def test_info_default_node_id_names_host_and_process(settings: Settings) -> None:
    async with client_for(make_app(settings, None)) as client:
        body = (await client.get("/info")).json()
    assert body["node_id"].endswith(f"-{os.getpid()}")


async def test_metrics_endpoint_counts_requests_by_route_template(settings: Settings) -> None:
    app = make_app(settings, Metrics())
    async with client_for(app) as client:
        await client.get("/api/users/7")
        await client.get("/api/users/8")
        response = await client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    assert 'http_requests_total{method="GET",route="/api/users/{user_id}",status="200"} 2.0' in text
    assert 'http_request_duration_seconds_bucket{le="0.005",method="GET"' in text
    assert "/api/users/7" not in text
    for name in (
        "logins_total",
        "registrations_total",
        "ws_connections",
        "ws_frames_in_total",
        "ws_frames_out_total",
        "deliveries_total",
        "fanout_latency_seconds",
        "slow_consumers_dropped_total",
        "rate_limited_total",
        "db_transaction_seconds",
        "process_cpu_seconds_total",
    ):
        assert f"# TYPE {name.removesuffix('_total')}" in text, name


async def test_no_metrics_route_without_metrics(settings: Settings) -> None:
    async with client_for(make_app(settings, None)) as client:
        assert (await client.get("/metrics")).status_code == 404


def test_metrics_instances_are_independent() -> None:
    first, second = Metrics(), Metrics()
    first.logins.labels(outcome="success").inc()
    first.rate_limited.labels(scope="message").inc(3)
    with first.db_transaction_timer("send_message"):
        pass
    first_text = first.render()[0].decode()
    second_text = second.render()[0].decode()
    assert 'logins_total{outcome="success"} 1.0' in first_text
    assert 'rate_limited_total{scope="message"} 3.0' in first_text
    assert 'db_transaction_seconds_count{name="send_message"} 1.0' in first_text
    assert "outcome=" not in second_text


def test_multiprocess_env_set_too_late_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(MULTIPROC_ENV, "/nonexistent")
    with pytest.raises(RuntimeError, match="before the process starts"):
        Metrics()


def test_multiprocess_mode_merges_workers(tmp_path: Path) -> None:
    worker = textwrap.dedent(
        """
        import os, sys
        from palaver.metrics import Metrics, mark_process_dead
        metrics = Metrics()
        metrics.registrations.inc()
        metrics.ws_connections.inc(int(sys.argv[1]))
        for pid in sys.argv[2:]:
            mark_process_dead(int(pid))
        print(os.getpid())
        print(metrics.render()[0].decode())
        """
    )
    env = {**os.environ, MULTIPROC_ENV: str(tmp_path)}

    def run(*args: str) -> tuple[str, str]:
        result = subprocess.run(
            [sys.executable, "-c", worker, *args],
            env=env,
            check=True,
            capture_output=True,
            text=True,
        )
        pid, _, text = result.stdout.partition("\n")
        return pid, text

    first_pid, _ = run("2")
    _, text = run("3")
    assert "registrations_total 2.0" in text
    # The first worker exited without being marked dead, so its gauge still counts.
    assert "ws_connections 5.0" in text
    _, text = run("0", first_pid)
    assert "registrations_total 3.0" in text
    assert "ws_connections 3.0" in text
    # Per-process collectors cannot be merged across workers, so they are left out.
    assert "process_cpu_seconds_total" not in text
