"""`palaver serve` as a real process: operations endpoints, logs, graceful shutdown."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest
import websockets

from tests.deployment import free_port

PASSWORD = "Sup3r-secret"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[subprocess.Popen[bytes], str, Path]]:
    port = free_port()
    log = tmp_path / "server.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("PALAVER_")}
    with log.open("wb") as sink:
        process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "palaver.cli",
                "serve",
                "--port",
                str(port),
                "--data-dir",
                str(tmp_path / "var"),
            ],
            stdout=sink,
            stderr=subprocess.STDOUT,
            env=env,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.HTTPError:
            time.sleep(0.1)
    else:
        process.kill()
        pytest.fail(f"server did not start:\n{log.read_text()}")
    try:
        yield process, base, log
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


def test_operations_endpoints(served: tuple[subprocess.Popen[bytes], str, Path]) -> None:
    _, base, _ = served
    with httpx.Client(base_url=base) as http:
        health = http.get("/health")
        body = health.json()
        assert body["status"] == "ok"
        assert body["checks"]["database"]["status"] == "ok"
        assert body["checks"]["broker"]["status"] == "ok"
        assert body["version"]
        assert body["uptime_seconds"] >= 0
        assert http.get("/healthz").status_code == 200
        info = http.get("/info").json()
        assert info["name"] == "Palaver"
        assert health.headers["x-content-type-options"] == "nosniff"
        assert "script-src 'self'" in health.headers["content-security-policy"]
        assert health.headers["x-request-id"]
        registered = http.post("/api/auth/register", json={"username": "ada", "password": PASSWORD})
        assert registered.status_code == 201
        assert (
            http.post(
                "/api/auth/login", json={"login": "ada", "password": "Wrong-pass1"}
            ).status_code
            == 401
        )
        user_id = registered.json()["user"]["id"]
        token = registered.json()["token"]
        assert (
            http.get(
                f"/api/users/{user_id}", headers={"Authorization": f"Bearer {token}"}
            ).status_code
            == 200
        )
        metrics = http.get("/metrics").text
        assert 'route="/api/users/{user_id}"' in metrics
        assert 'status="200"' in metrics
        assert "http_request_duration_seconds_bucket" in metrics
        assert 'outcome="invalid_credentials"' in metrics
        for path in ("/openapi.json", "/api/chats/openapi.json"):
            spec = http.get(path).json()
            assert "/api/auth/login" in spec["paths"]
        for path in ("/docs", "/api/chats/docs"):
            page = http.get(path)
            assert page.status_code == 200
            assert "cdn" not in page.text.lower()


def test_logs_are_json_with_request_ids_and_no_secrets(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, base, log = served
    with httpx.Client(base_url=base) as http:
        token = http.post(
            "/api/auth/register", json={"username": "ada", "password": PASSWORD}
        ).json()["token"]
        http.get("/health", params={"token": token})
        http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=20)
    text = log.read_text()
    assert PASSWORD not in text
    assert token not in text
    lines = [orjson.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert lines
    assert any(line.get("request_id") for line in lines)
    assert any(line.get("action") == "user.registered" for line in lines)


async def test_sigterm_closes_sockets_with_1012_and_exits(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, base, log = served
    async with httpx.AsyncClient(base_url=base) as http:
        token = (
            await http.post("/api/auth/register", json={"username": "ada", "password": PASSWORD})
        ).json()["token"]
    ws = await websockets.connect(base.replace("http", "ws") + f"/ws?token={token}")
    assert orjson.loads(await ws.recv())["type"] == "hello"
    process.send_signal(signal.SIGTERM)
    async with asyncio.timeout(15):
        await ws.wait_closed()
    assert ws.close_code in (1001, 1012)
    # A clean shutdown is a success: status 0, not death by the signal.
    assert await asyncio.to_thread(process.wait, 20) == 0
    assert "Application shutdown complete" in log.read_text()


async def test_sigterm_lets_in_flight_requests_finish(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, base, _ = served
    async with httpx.AsyncClient(base_url=base, timeout=20) as http:
        # Registrations hash passwords (tens of ms each), so several are in flight when
        # the signal lands.
        requests = [
            asyncio.create_task(
                http.post("/api/auth/register", json={"username": f"u{i}", "password": PASSWORD})
            )
            for i in range(12)
        ]
        await asyncio.sleep(0.05)
        process.send_signal(signal.SIGTERM)
        responses = await asyncio.gather(*requests, return_exceptions=True)
    finished = [r for r in responses if isinstance(r, httpx.Response)]
    refused = [r for r in responses if isinstance(r, httpx.ConnectError)]
    # Every request the server had accepted completes; none is cut off half-way.
    assert all(r.status_code == 201 for r in finished)
    assert len(finished) + len(refused) == len(requests)
    assert finished
    assert await asyncio.to_thread(process.wait, 20) == 0


def test_sigint_exits_with_status_zero(
    served: tuple[subprocess.Popen[bytes], str, Path],
) -> None:
    process, _, log = served
    process.send_signal(signal.SIGINT)
    assert process.wait(20) == 0
    assert "Traceback" not in log.read_text()
