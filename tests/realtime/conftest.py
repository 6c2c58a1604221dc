"""A real Palaver server on a free port, in-process, and socket clients for it."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
import websockets

from palaver.config import Settings
from palaver.gateway.serve import GATEWAY_STATE_KEY
from palaver.http.app import create_app
from palaver.server import uvicorn_options
from palaver.services.container import Services

PASSWORD = "Sup3r-secret"


@dataclass
class Server:
    base: str
    services: Services
    settings: Settings
    gateway: Any = None
    _names: itertools.count[int] = field(default_factory=itertools.count)

    @property
    def ws_url(self) -> str:
        return self.base.replace("http://", "ws://") + "/ws"

    async def user(self, name: str | None = None) -> tuple[int, str]:
        """Register a user; return (id, access token)."""
        name = name or f"user{next(self._names)}"
        async with httpx.AsyncClient(base_url=self.base) as http:
            r = await http.post("/api/auth/register", json={"username": name, "password": PASSWORD})
            assert r.status_code == 201, r.text
            return r.json()["user"]["id"], r.json()["token"]

    async def rest(self, token: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        async with httpx.AsyncClient(base_url=self.base) as http:
            return await http.request(
                method, path, headers={"Authorization": f"Bearer {token}"}, **kwargs
            )

    async def room(self, token: str, name: str) -> int:
        r = await self.rest(
            token, "POST", "/api/conversations", json={"type": "room", "name": name}
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    async def join(self, token: str, conversation_id: int) -> None:
        r = await self.rest(token, "POST", f"/api/conversations/{conversation_id}/join")
        assert r.status_code == 200, r.text

    async def connect(self, token: str, *, resume: dict[int, int] | None = None) -> Client:
        ws = await websockets.connect(f"{self.ws_url}?token={token}", max_size=2**20)
        client = Client(ws)
        client.hello = await client.next("hello")
        if resume is not None:
            await client.request({"type": "resume", "cursors": resume}, "resumed")
        return client


class Client:
    """A socket client that files frames by type and keeps every message in order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.hello: dict[str, Any] = {}
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.messages: list[dict[str, Any]] = []
        self._ids = itertools.count(1)
        self._waiters: dict[int, asyncio.Future[dict[str, Any]]] = {}
        self._reader = asyncio.create_task(self._read())

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                if frame["type"] == "message":
                    self.messages.append(frame)
                waiter = self._waiters.pop(frame.get("id"), None)  # type: ignore[arg-type]
                if waiter is not None and not waiter.done():
                    waiter.set_result(frame)
                await self.frames.put(frame)

    async def next(self, kind: str, timeout: float = 5.0) -> dict[str, Any]:
        """The next frame of type ``kind`` (others are skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame["type"] == kind:
                    return frame

    async def request(self, frame: dict[str, Any], reply: str = "result") -> dict[str, Any]:
        """Send a frame with a fresh id and wait for the reply carrying that id."""
        cid = next(self._ids)
        waiter: asyncio.Future[dict[str, Any]] = asyncio.get_running_loop().create_future()
        self._waiters[cid] = waiter
        payload = orjson.dumps({**frame, "id": cid}, option=orjson.OPT_NON_STR_KEYS)
        await self.ws.send(payload.decode())
        async with asyncio.timeout(5):
            got = await waiter
        assert got["type"] in (reply, "error"), got
        return got

    async def send_text(self, conversation_id: int, content: str, **extra: Any) -> dict[str, Any]:
        return await self.request(
            {"type": "send", "conversation_id": conversation_id, "content": content, **extra},
            "ack",
        )

    async def wait_messages(
        self, conversation_id: int, count: int, timeout: float = 5
    ) -> list[dict[str, Any]]:
        async with asyncio.timeout(timeout):
            while True:
                got = [m for m in self.messages if m["conversation_id"] == conversation_id]
                if len(got) >= count:
                    return got
                await asyncio.sleep(0.01)

    async def closed_with(self, timeout: float = 5) -> int | None:
        """Wait until the server closes the socket; return its close code."""
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        code: int | None = self.ws.close_code
        return code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


async def start_server(settings: Settings) -> AsyncIterator[Server]:
    app = create_app(settings)
    options = uvicorn_options(settings)
    options.update(port=0, loop="asyncio", access_log=False)
    server = uvicorn.Server(uvicorn.Config(app, **options))
    task = asyncio.create_task(server.serve())
    while not server.started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    port = server.servers[0].sockets[0].getsockname()[1]
    try:
        gateway = server.lifespan.state.get(GATEWAY_STATE_KEY)  # type: ignore[attr-defined]
        yield Server(f"http://127.0.0.1:{port}", app.state.services, settings, gateway)
    finally:
        server.should_exit = True
        await task


@pytest.fixture
async def server(settings: Settings) -> AsyncIterator[Server]:
    """A server whose message rate limit does not get in the way of quick test loops
    (the limit itself is tested with its defaults)."""
    relaxed = settings.model_copy(
        update={"rate_messages_burst": 10_000, "rate_messages_per_second": 10_000.0}
    )
    async for value in start_server(relaxed):
        yield value
