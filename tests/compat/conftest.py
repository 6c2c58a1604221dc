"""Clients of the seed dialects against a real in-process server.

Raw dialects are driven with the ``websockets`` client; Socket.IO with python-socketio's
``AsyncClient`` and with Node.js ``socket.io-client`` (tests/compat/node, installed by
``make node-deps``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import shutil
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import socketio
import websockets
from tests.realtime.conftest import Server, start_server

NODE_DIR = Path(__file__).parent / "node"
TIMEOUT = 10.0


@pytest.fixture
async def server(settings: Any) -> AsyncIterator[Server]:
    relaxed = settings.model_copy(
        update={
            "rate_messages_burst": 10_000,
            "rate_messages_per_second": 10_000.0,
            # Socket.IO long-polls are answered at least every ping interval: a short
            # one lets clients disconnect and the server stop without waiting.
            "ws_ping_interval": 1.0,
            "ws_ping_timeout": 2.0,
        }
    )
    async for value in start_server(relaxed):
        yield value


def ws_base(server: Server) -> str:
    return server.base.replace("http://", "ws://")


class Raw:
    """A raw WebSocket client that files JSON frames in arrival order."""

    def __init__(self, ws: Any) -> None:
        self.ws = ws
        self.frames: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self.seen: list[dict[str, Any]] = []
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def connect(cls, url: str, **kwargs: Any) -> Raw:
        return cls(await websockets.connect(url, max_size=2**20, **kwargs))

    async def _read(self) -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in self.ws:
                frame = orjson.loads(raw)
                self.seen.append(frame)
                await self.frames.put(frame)

    async def send(self, frame: dict[str, Any] | str | bytes) -> None:
        if isinstance(frame, dict):
            frame = orjson.dumps(frame).decode()
        await self.ws.send(frame)

    async def next(self, kind: str, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The next frame of type ``kind`` whose fields equal ``match`` (others skipped)."""
        async with asyncio.timeout(timeout):
            while True:
                frame = await self.frames.get()
                if frame.get("type") == kind and all(frame.get(k) == v for k, v in match.items()):
                    return frame

    async def request(self, frame: dict[str, Any], kind: str) -> dict[str, Any]:
        """Send a frame and wait for a frame of type ``kind`` or ``error``."""
        await self.send(frame)
        async with asyncio.timeout(TIMEOUT):
            while True:
                got = await self.frames.get()
                if got.get("type") in (kind, "error"):
                    return got

    @property
    def done(self) -> bool:
        """Whether the socket is closed and every frame it carried is filed."""
        return self._reader.done()

    async def closed_with(self, timeout: float = TIMEOUT) -> int | None:
        async with asyncio.timeout(timeout):
            await asyncio.shield(self._reader)
        code: int | None = self.ws.close_code
        return code

    async def close(self) -> None:
        await self.ws.close()
        self._reader.cancel()


class Sio:
    """A python-socketio client that files every event in arrival order."""

    def __init__(self) -> None:
        self.client = socketio.AsyncClient(reconnection=False)
        self.events: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self.seen: list[tuple[str, Any]] = []

        async def on_any(event: str, data: Any = None) -> None:
            self.seen.append((event, data))
            await self.events.put((event, data))

        self.client.on("*", on_any)

    @classmethod
    async def connect(cls, base: str, token: str, transport: str = "websocket") -> Sio:
        sio = cls()
        await sio.client.connect(
            base, auth={"token": token}, transports=[transport], wait_timeout=TIMEOUT
        )
        return sio

    async def call(self, event: str, data: Any) -> Any:
        return await self.client.call(event, data, timeout=TIMEOUT)

    async def next(self, event: str, timeout: float = TIMEOUT, **match: Any) -> Any:
        async with asyncio.timeout(timeout):
            while True:
                name, data = await self.events.get()
                if name == event and all(
                    isinstance(data, dict) and data.get(k) == v for k, v in match.items()
                ):
                    return data

    async def close(self) -> None:
        await self.client.disconnect()


class NodeSio:
    """Node.js ``socket.io-client`` in a child process, driven line by line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.lines: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._acks = itertools.count(1)
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, base: str, token: str, transport: str = "websocket") -> NodeSio:
        node = shutil.which("node")
        assert node, "Node.js is required (make node-deps)"
        assert (NODE_DIR / "node_modules" / "socket.io-client").is_dir(), "run make node-deps"
        proc = await asyncio.create_subprocess_exec(
            node,
            str(NODE_DIR / "sio_client.js"),
            base,
            token,
            transport,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        while line := await self.proc.stdout.readline():
            await self.lines.put(json.loads(line))

    async def wait(self, key: str, timeout: float = TIMEOUT, **match: Any) -> dict[str, Any]:
        """The next line carrying ``key`` (and, for events, the event name in ``match``)."""
        async with asyncio.timeout(timeout):
            while True:
                line = await self.lines.get()
                if key in line and all(line.get(k) == v for k, v in match.items()):
                    return line

    async def emit(self, event: str, data: Any) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"emit": event, "data": data}).encode() + b"\n")
        await self.proc.stdin.drain()

    async def call(self, event: str, data: Any) -> Any:
        ack = next(self._acks)
        assert self.proc.stdin is not None
        self.proc.stdin.write(
            json.dumps({"emit": event, "data": data, "ack": ack}).encode() + b"\n"
        )
        await self.proc.stdin.drain()
        return (await self.wait("ack", ack=ack))["data"]

    async def event(self, name: str, timeout: float = TIMEOUT) -> Any:
        return (await self.wait("event", timeout, event=name))["data"]

    async def close(self) -> None:
        if self.proc.returncode is None:
            assert self.proc.stdin is not None
            with contextlib.suppress(ConnectionError):
                self.proc.stdin.write(b'{"close": true}\n')
                await self.proc.stdin.drain()
            try:
                async with asyncio.timeout(TIMEOUT):
                    await self.proc.wait()
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        self._reader.cancel()
