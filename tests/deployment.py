"""Real ``palaver`` processes on throwaway PostgreSQL databases and
Redis namespaces, socket and REST clients for them.

Every deployment gets its own database (``palaver_t_<random>``, dropped afterwards), its
own Redis namespace (its keys deleted afterwards) and its own secret key, so runs that
share the machine's PostgreSQL and Redis never see each other.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import websockets

from tests.realtime.conftest import Client
from tests.services import (
    POSTGRES_URL,
    REDIS_URL,
    create_database,
    delete_namespace,
    drop_database,
    require,
)

PASSWORD = "Sup3r-secret"
# A loaded machine (browser tests, benchmarks) can take tens of seconds to import and
# start a server process; a healthy one takes about one.
START_TIMEOUT = 90.0


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def base_env() -> dict[str, str]:
    """This process's environment without any ``PALAVER_*`` setting or config file."""
    return {k: v for k, v in os.environ.items() if not k.startswith("PALAVER_")}


@pytest.fixture
def make_database() -> Iterator[Callable[[], str]]:
    """``make_database()``: the URL of a new empty PostgreSQL database; every one made is
    dropped after the test."""
    require("PostgreSQL", POSTGRES_URL)
    made: list[str] = []

    def make() -> str:
        url = create_database()
        made.append(url)
        return url

    try:
        yield make
    finally:
        for url in made:
            drop_database(url)


@dataclass
class Node:
    """One ``palaver serve`` process (which may itself run several workers)."""

    name: str
    port: int
    env: dict[str, str]
    log: Path
    args: list[str] = field(default_factory=list)
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    def log_tail(self, size: int = 4000) -> str:
        return self.log.read_text(errors="replace")[-size:] if self.log.exists() else ""

    async def start(self) -> None:
        """Start the process and wait until ``/health`` answers 200."""
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "palaver.cli",
                    "serve",
                    "--port",
                    str(self.port),
                    *self.args,
                ],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        await self.wait_healthy()

    async def wait_healthy(self, timeout: float = START_TIMEOUT) -> None:
        async with httpx.AsyncClient(base_url=self.base, timeout=2) as http:
            deadline = asyncio.get_running_loop().time() + timeout
            while asyncio.get_running_loop().time() < deadline:
                if self.process is not None and self.process.poll() is not None:
                    pytest.fail(f"node {self.name} exited:\n{self.log_tail()}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health")).status_code == 200:
                        return
                await asyncio.sleep(0.1)
        pytest.fail(f"node {self.name} did not become healthy:\n{self.log_tail()}")

    def send_signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self, timeout: float = 30) -> int:
        """Wait for the process to exit; its return code."""
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, timeout)

    def stop(self) -> None:
        """Kill the process if it still runs (test teardown)."""
        self.terminate()
        self.reap()

    def terminate(self) -> None:
        """Ask the process to stop, without waiting."""
        if self.process is not None and self.process.poll() is None:
            # SIGTERM, not SIGKILL: a supervisor stops its workers before it exits, where
            # a killed one would leave them behind.
            self.process.send_signal(signal.SIGTERM)

    def reap(self) -> None:
        """Wait for a process asked to stop; kill it if it takes too long."""
        if self.process is not None:
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Deployment:
    """Palaver nodes sharing one PostgreSQL database, Redis namespace and secret key."""

    database_url: str
    namespace: str
    secret: str
    tmp: Path
    nodes: list[Node] = field(default_factory=list)

    def env(self, **settings: str) -> dict[str, str]:
        env = base_env()
        env.update(
            PALAVER_DATABASE_URL=self.database_url,
            PALAVER_REDIS_URL=REDIS_URL,
            PALAVER_REDIS_NAMESPACE=self.namespace,
            PALAVER_SECRET_KEY=self.secret,
            PALAVER_LOG_LEVEL="info",
            PALAVER_DATABASE_POOL_SIZE="4",
            # Test loops send quickly; the limits themselves are tested elsewhere.
            PALAVER_RATE_MESSAGES_BURST="10000",
            PALAVER_RATE_MESSAGES_PER_SECOND="10000",
            PALAVER_LOGIN_MAX_FAILURES="1000",
        )
        env.update({f"PALAVER_{k.upper()}": v for k, v in settings.items()})
        return env

    def node(self, name: str, *args: str, **settings: str) -> Node:
        """A node (not started) with its own port, data directory and log."""
        data_dir = self.tmp / name
        data_dir.mkdir(parents=True, exist_ok=True)
        env = self.env(DATA_DIR=str(data_dir), **settings)
        node = Node(name, free_port(), env, self.tmp / f"{name}.log", list(args))
        self.nodes.append(node)
        return node

    def palaver(self, *args: str, stdin: str = PASSWORD + "\n") -> subprocess.CompletedProcess[str]:
        """Run a ``palaver`` command against this deployment (``stdin`` answers
        ``--password-stdin``)."""
        return subprocess.run(
            [sys.executable, "-m", "palaver.cli", *args],
            env=self.env(DATA_DIR=str(self.tmp / "cli")),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )


@pytest.fixture
async def deployment(make_database: Callable[[], str], tmp_path: Path) -> AsyncIterator[Deployment]:
    require("Redis", REDIS_URL)
    database_url = make_database()
    namespace = f"palaver-t-{secrets.token_hex(6)}"
    found = Deployment(database_url, namespace, secrets.token_urlsafe(48), tmp_path)
    try:
        yield found
    finally:
        # All at once: nodes shut down side by side.
        for node in found.nodes:
            node.terminate()
        for node in found.nodes:
            node.reap()
        await delete_namespace(namespace)


# -- clients -------------------------------------------------------------------------------


async def register(base: str, name: str, **client: Any) -> tuple[int, str]:
    """Register ``name`` through ``base``; return (user id, access token)."""
    async with httpx.AsyncClient(base_url=base, timeout=30, **client) as http:
        r = await http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return r.json()["user"]["id"], r.json()["token"]


async def rest(base: str, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        return await http.request(
            method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
        )


async def room_with(base: str, owner: str, name: str, *members: str) -> int:
    """A room created by token ``owner`` and joined by the ``members`` tokens."""
    r = await rest(base, owner, "POST", "/api/conversations", json={"type": "room", "name": name})
    assert r.status_code == 201, r.text
    room = int(r.json()["id"])
    for token in members:
        joined = await rest(base, token, "POST", f"/api/conversations/{room}/join")
        assert joined.status_code == 200, joined.text
    return room


async def connect(
    ws_url: str, token: str, *, resume: dict[int, int] | None = None, origin: str | None = None
) -> Client:
    """A socket client past ``hello``; resumed from ``resume`` when given (else the
    server resumes from the user's delivery cursors)."""
    ws = await websockets.connect(
        f"{ws_url}?token={token}",
        max_size=2**22,
        origin=origin,  # type: ignore[arg-type]
    )
    client = Client(ws)
    client.hello = await client.next("hello", timeout=15)
    if resume is not None:
        await client.request({"type": "resume", "cursors": resume}, "resumed")
    return client


async def until_seq(
    client: Client, conversation_id: int, seq: int, timeout: float = 10
) -> list[dict[str, Any]]:
    """The conversation's messages on ``client`` once it holds the one numbered ``seq``."""
    async with asyncio.timeout(timeout):
        while True:
            got = [m for m in client.messages if m["conversation_id"] == conversation_id]
            if got and got[-1]["seq"] >= seq:
                return got
            await asyncio.sleep(0.01)
