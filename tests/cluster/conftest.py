"""Several real `palaver serve` processes sharing one PostgreSQL database and one Redis."""

from __future__ import annotations

import asyncio
import os
import secrets
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import httpx
import pytest

from tests.realtime.conftest import Client
from tests.services import POSTGRES_URL, REDIS_URL, require

PASSWORD = "Sup3r-secret"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass
class Node:
    name: str
    port: int
    env: dict[str, str]
    log: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/ws"

    async def start(self) -> None:
        with self.log.open("ab") as sink:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "palaver.cli", "serve", "--port", str(self.port)],
                stdout=sink,
                stderr=subprocess.STDOUT,
                env=self.env,
            )
        async with httpx.AsyncClient(base_url=self.base) as http:
            for _ in range(300):
                if self.process.poll() is not None:
                    pytest.fail(f"node {self.name} exited:\n{self.log.read_text()[-3000:]}")
                try:
                    if (await http.get("/health", timeout=1)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)
        pytest.fail(f"node {self.name} did not become healthy:\n{self.log.read_text()[-3000:]}")

    def kill(self, sig: int = signal.SIGKILL) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    async def wait(self) -> int:
        assert self.process is not None
        return await asyncio.to_thread(self.process.wait, 30)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()


@dataclass
class Cluster:
    nodes: list[Node]
    database_url: str
    _names: Any = field(default_factory=lambda: iter(range(10_000)))

    async def user(self, name: str) -> tuple[int, str]:
        async with httpx.AsyncClient(base_url=self.nodes[0].base) as http:
            r = await http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
            assert r.status_code == 201, r.text
            return r.json()["user"]["id"], r.json()["token"]

    async def rest(
        self, node: Node, token: str, method: str, path: str, **kwargs: Any
    ) -> httpx.Response:
        async with httpx.AsyncClient(base_url=node.base) as http:
            return await http.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )

    async def connect(
        self, node: Node, token: str, *, resume: dict[int, int] | None = None
    ) -> Client:
        import websockets

        ws = await websockets.connect(f"{node.ws_url}?token={token}", max_size=2**22)
        client = Client(ws)
        client.hello = await client.next("hello")
        await client.request({"type": "resume", "cursors": resume or {}}, "resumed")
        return client


async def _admin(sql: str) -> None:
    conn = await asyncpg.connect(POSTGRES_URL.replace("postgresql://", "postgres://", 1))
    try:
        await conn.execute(sql)
    finally:
        await conn.close()


@pytest.fixture
async def fresh_database() -> AsyncIterator[str]:
    require("PostgreSQL", POSTGRES_URL)
    name = f"palaver_t_{secrets.token_hex(4)}"
    await _admin(f'CREATE DATABASE "{name}"')
    try:
        yield f"{POSTGRES_URL.rsplit('/', 1)[0]}/{name}"
    finally:
        await _admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


NodeFactory = Callable[..., Node]


@pytest.fixture
async def make_cluster(fresh_database: str, tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    """``await make_cluster(n, database_url=..., redis_url=...)`` starts n nodes."""
    require("Redis", REDIS_URL)
    started: list[Node] = []
    secret = secrets.token_urlsafe(48)
    namespace = f"t{secrets.token_hex(4)}"

    async def make(
        count: int = 2,
        *,
        database_url: str | None = None,
        redis_url: str | None = None,
        env: dict[str, str] | None = None,
    ) -> Cluster:
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("PALAVER_")}
        base_env.update(
            PALAVER_DATABASE_URL=database_url or fresh_database,
            PALAVER_REDIS_URL=redis_url or REDIS_URL,
            PALAVER_REDIS_NAMESPACE=namespace,
            PALAVER_SECRET_KEY=secret,
            PALAVER_LOG_LEVEL="warning",
            PALAVER_RATE_MESSAGES_BURST="100000",
            PALAVER_RATE_MESSAGES_PER_SECOND="100000",
            PALAVER_DATABASE_POOL_SIZE="4",
        )
        base_env.update(env or {})
        nodes = []
        for i in range(count):
            env = {**base_env, "PALAVER_DATA_DIR": str(tmp_path / f"node{i}")}
            node = Node(f"n{i}", free_port(), env, tmp_path / f"node{i}.log")
            nodes.append(node)
            started.append(node)
        # The first node migrates alone, so the others start on a ready schema.
        await nodes[0].start()
        await asyncio.gather(*(n.start() for n in nodes[1:]))
        return Cluster(nodes, database_url or fresh_database)

    yield make
    for node in started:
        node.stop()
