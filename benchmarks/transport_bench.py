"""Lean WebSocket path versus uvicorn's ASGI WebSocket path: CPU per delivery and memory
per idle connection. Prints figures; asserts nothing.

    uv run python benchmarks/transport_bench.py                 # fanout, memory and micro
    uv run python benchmarks/transport_bench.py fanout --connections 1000 --rounds 200
    uv run python benchmarks/transport_bench.py memory --idle 5000
    uv run python benchmarks/transport_bench.py micro           # in-process, no sockets

fanout: the server (its own process, pinned to cpu 0, uvloop as uvicorn picks it) sends
``rounds`` messages to ``connections`` sockets; the clients (this process, pinned to cpu
1) only count bytes. The server's user+system CPU from the first send until the clients
have every byte, divided by the deliveries, is the figure.

memory: RSS growth of the server per idle WebSocket, between a warm server holding 200
sockets and the same server holding ``idle`` more.

micro: the receive path of this module's frame parser versus ``websockets``' sans-I/O
``ServerProtocol``, and the Python heap each keeps per connection.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import gc
import json
import os
import resource
import socket
import subprocess
import sys
import time
import tracemalloc
from typing import Any, cast

from fastapi import FastAPI, WebSocket, WebSocketDisconnect

PAYLOAD_PREFIX = b'{"type":"msg","body":"'


def payload(size: int) -> bytes:
    return PAYLOAD_PREFIX + b"x" * max(0, size - len(PAYLOAD_PREFIX) - 2) + b'"}'


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def rss_bytes() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


# -- server process ------------------------------------------------------------------


class Commands:
    """The control protocol both servers speak on a ``?control=1`` socket."""

    def __init__(self) -> None:
        self.started = 0.0

    def run(self, words: list[str], count: int) -> str | tuple[int, int, str]:
        if words[0] == "count":
            return f"count {count}"
        if words[0] == "go":
            self.started = cpu_seconds()
            return int(words[1]), int(words[2]), words[3]
        return f"cpu {cpu_seconds() - self.started:.6f}"


def build_app(sinks: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/rss")
    async def rss() -> dict[str, int]:
        return {"rss": rss_bytes(), "sockets": len(sinks)}

    return app


def serve_lean(port_sock: socket.socket, loop: str) -> None:
    import uvicorn

    from palaver.gateway.lean import (
        Accept,
        Connection,
        GatewayHandler,
        Reject,
        Request,
        encode_text_frame,
        lean_ws_protocol_factory,
    )

    commands = Commands()

    class Bench(GatewayHandler):
        def __init__(self) -> None:
            self.sinks: dict[Connection, None] = {}

        async def authorize(self, request: Request) -> Accept | Reject:
            return Accept(state=request.query.get("control") == "1")

        def on_open(self, conn: Connection) -> None:
            if not conn.state:
                self.sinks[conn] = None

        def on_close(self, conn: Connection, code: int) -> None:
            self.sinks.pop(conn, None)

        def on_text(self, conn: Connection, data: bytes) -> None:
            verdict = commands.run(data.decode().split(), len(self.sinks))
            if isinstance(verdict, str):
                conn.send_text(verdict.encode())
            else:
                asyncio.get_running_loop().create_task(self.fanout(*verdict))

        async def fanout(self, rounds: int, size: int, how: str) -> None:
            body = payload(size)
            for _ in range(rounds):
                if how == "frame":
                    frame = encode_text_frame(body)
                    for conn in self.sinks:
                        conn.send_frame(frame)
                else:
                    for conn in self.sinks:
                        conn.send_text(body)
                await asyncio.sleep(0)

    handler = Bench()
    protocol = lean_ws_protocol_factory(handler)
    config = uvicorn.Config(
        build_app(handler.sinks), ws=protocol, loop=loop, log_level="warning", lifespan="off"
    )
    uvicorn.Server(config).run(sockets=[port_sock])


def serve_asgi(port_sock: socket.socket, loop: str) -> None:
    import uvicorn

    commands = Commands()
    sinks: dict[WebSocket, None] = {}
    app = build_app(sinks)

    async def fanout(rounds: int, size: int, how: str) -> None:
        text = payload(size).decode()
        for _ in range(rounds):
            for ws in list(sinks):
                await ws.send_text(text)
            await asyncio.sleep(0)

    @app.websocket("/ws")
    async def endpoint(websocket: WebSocket) -> None:
        await websocket.accept()
        control = websocket.query_params.get("control") == "1"
        if not control:
            sinks[websocket] = None
        try:
            while True:
                words = (await websocket.receive_text()).split()
                verdict = commands.run(words, len(sinks))
                if isinstance(verdict, str):
                    await websocket.send_text(verdict)
                else:
                    asyncio.get_running_loop().create_task(fanout(*verdict))
        except WebSocketDisconnect:
            sinks.pop(websocket, None)

    config = uvicorn.Config(app, loop=loop, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[port_sock])


def serve_relay(port_sock: socket.socket, loop: str) -> None:
    """The Node.js ``ws-node`` peer's room relay on the lean path, for ``compare.sh``:
    ``{type:'join',room}`` and ``{type:'send',room,body}``; nothing else."""
    import orjson
    import uvicorn

    from palaver.gateway.lean import (
        Accept,
        Connection,
        GatewayHandler,
        Request,
        encode_text_frame,
        lean_ws_protocol_factory,
    )

    class Relay(GatewayHandler):
        def __init__(self) -> None:
            self.rooms: dict[str, dict[Connection, None]] = {}
            self.joined: dict[Connection, list[str]] = {}

        async def authorize(self, request: Request) -> Accept:
            return Accept()

        def on_text(self, conn: Connection, data: bytes) -> None:
            frame = orjson.loads(data)
            room = frame["room"]
            if frame["type"] == "join":
                self.rooms.setdefault(room, {})[conn] = None
                self.joined.setdefault(conn, []).append(room)
                conn.send_text(orjson.dumps({"type": "joined", "room": room}))
            elif frame["type"] == "send":
                out = encode_text_frame(
                    orjson.dumps({"type": "msg", "room": room, "body": frame["body"]})
                )
                for peer in self.rooms.get(room, ()):
                    peer.send_frame(out)

        def on_close(self, conn: Connection, code: int) -> None:
            for room in self.joined.pop(conn, ()):
                self.rooms[room].pop(conn, None)

    protocol = lean_ws_protocol_factory(Relay())
    config = uvicorn.Config(FastAPI(), ws=protocol, loop=loop, log_level="warning", lifespan="off")
    uvicorn.Server(config).run(sockets=[port_sock])


def serve(mode: str, loop: str, port: int = 0) -> None:
    if mode != "relay":  # compare.sh pins the relay itself
        os.sched_setaffinity(0, {0})
    # IPPROTO_TCP, as uvicorn's own bind would: asyncio sets TCP_NODELAY only then.
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(4096)
    print(sock.getsockname()[1], flush=True)
    servers = {"lean": serve_lean, "asgi": serve_asgi, "relay": serve_relay}
    servers[mode](sock, loop)


# -- client side (this process) ------------------------------------------------------


def handshake(port: int, query: str = "") -> bytes:
    key = base64.b64encode(os.urandom(16))
    return (
        b"GET /ws"
        + query.encode()
        + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n" % port
        + b"Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n"
        + b"Sec-WebSocket-Key: "
        + key
        + b"\r\n\r\n"
    )


class Sink(asyncio.Protocol):
    """A client socket that completes the handshake, then only counts bytes."""

    received = 0
    expected = 0
    complete: asyncio.Event | None = None

    @classmethod
    def expect(cls, total: int) -> asyncio.Event:
        cls.received, cls.expected, cls.complete = 0, total, asyncio.Event()
        return cls.complete

    @classmethod
    def count(cls, n: int) -> None:
        cls.received += n
        if cls.complete is not None and cls.received >= cls.expected:
            cls.complete.set()

    def __init__(self, port: int, opened: asyncio.Future[None]) -> None:
        self.port = port
        self.opened = opened
        self.head = b""
        self.transport: asyncio.Transport | None = None

    def itself(self) -> Sink:
        return self

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is no subclass
        self.transport.write(handshake(self.port))

    def data_received(self, data: bytes) -> None:
        if self.opened.done():
            Sink.count(len(data))
            return
        self.head += data
        end = self.head.find(b"\r\n\r\n")
        if end >= 0:
            if not self.head.startswith(b"HTTP/1.1 101"):
                self.opened.set_exception(RuntimeError(self.head[:40].decode()))
                return
            Sink.count(len(self.head) - end - 4)
            self.opened.set_result(None)


class Server:
    def __init__(self, mode: str, loop: str) -> None:
        self.mode = mode
        self.process = subprocess.Popen(
            [sys.executable, __file__, "serve", "--mode", mode, "--loop", loop],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.port = int(self.process.stdout.readline())
        self.sinks: list[Sink] = []

    async def open_sinks(self, count: int, batch: int = 250) -> None:
        loop = asyncio.get_running_loop()
        for start in range(0, count, batch):
            futures = []
            for _ in range(min(batch, count - start)):
                opened: asyncio.Future[None] = loop.create_future()
                sink = Sink(self.port, opened)
                await loop.create_connection(
                    functools.partial(Sink.itself, sink), "127.0.0.1", self.port
                )
                self.sinks.append(sink)
                futures.append(opened)
            await asyncio.gather(*futures)

    def rss(self) -> dict[str, int]:
        import httpx

        response = httpx.get(f"http://127.0.0.1:{self.port}/rss")
        return dict(response.json())

    def stop(self) -> None:
        for sink in self.sinks:
            if sink.transport is not None:
                sink.transport.abort()
        self.process.terminate()
        self.process.wait()


async def fanout(
    mode: str, how: str, loop: str, connections: int, rounds: int, size: int
) -> dict[str, Any]:
    from websockets.asyncio.client import connect

    server = Server(mode, loop)
    try:
        await server.open_sinks(connections)
        url = f"ws://127.0.0.1:{server.port}/ws?control=1"
        async with connect(url, compression=None, ping_interval=None) as control:
            while True:
                await control.send("count")
                if await control.recv() == f"count {connections}":
                    break
                await asyncio.sleep(0.05)
            frame_len = len(payload(size)) + (2 if len(payload(size)) < 126 else 4)
            result: dict[str, Any] = {}
            for n in (max(5, rounds // 10), rounds):  # warm-up, then the measure
                complete = Sink.expect(n * connections * frame_len)
                started = time.perf_counter()
                await control.send(f"go {n} {size} {how}")
                await complete.wait()
                wall = time.perf_counter() - started
                await control.send("done")
                cpu = float(str(await control.recv()).split()[1])
                result = {
                    "path": f"{mode}/{how}",
                    "server_loop": loop,
                    "connections": connections,
                    "deliveries": n * connections,
                    "cpu_us_per_delivery": round(cpu * 1e6 / (n * connections), 2),
                    "deliveries_per_s": round(n * connections / wall),
                }
            return result
    finally:
        server.stop()


async def memory(mode: str, loop: str, idle: int) -> dict[str, Any]:
    server = Server(mode, loop)
    try:
        await server.open_sinks(200)
        await asyncio.sleep(0.5)
        base = server.rss()
        await server.open_sinks(idle)
        await asyncio.sleep(1.0)
        loaded = server.rss()
        if loaded["sockets"] != 200 + idle:
            raise RuntimeError(f"server holds {loaded['sockets']} sockets, not {200 + idle}")
        return {
            "path": mode,
            "server_loop": loop,
            "idle_sockets": idle,
            "rss_kb_per_socket": round((loaded["rss"] - base["rss"]) / idle / 1024, 2),
        }
    finally:
        server.stop()


# -- micro -----------------------------------------------------------------------------


def micro() -> list[dict[str, Any]]:
    from websockets.server import ServerProtocol

    from palaver.gateway.frames import apply_mask, encode_text_frame
    from palaver.gateway.handshake import Request
    from palaver.gateway.lean import Accept, Gateway, GatewayHandler, LeanSettings
    from palaver.gateway.transport import Connection

    class Null(GatewayHandler):
        async def authorize(self, request: Request) -> Accept:
            return Accept()

        def on_text(self, conn: Connection, data: bytes) -> None:
            pass

    class FakeTransport:
        def write(self, data: bytes) -> None:
            pass

        def is_closing(self) -> bool:
            return False

    head = handshake(8000, "?token=" + "t" * 200)
    body = payload(100)
    mask = os.urandom(4)
    client_frame = bytes([0x81, 0x80 | len(body)]) + mask + apply_mask(body, mask)
    gateway = Gateway(Null(), LeanSettings(), None)
    rounds = 200_000
    rows = []

    def heap_per(make: Any, n: int = 2000) -> float:
        gc.collect()
        tracemalloc.start()
        keep = [make() for _ in range(n)]
        gc.collect()
        used = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        del keep
        return used / n

    def lean_conn() -> Connection:
        request = Request(bytes(bytearray(head)))  # its own copy, as from a socket
        return Connection(FakeTransport(), gateway, request, None)  # type: ignore[arg-type]

    def ws_conn() -> ServerProtocol:
        proto = ServerProtocol(max_size=64 * 1024)
        proto.receive_data(head)
        proto.send_response(proto.accept(proto.events_received()[0]))  # type: ignore[arg-type]
        proto.data_to_send()
        return proto

    conn, proto = lean_conn(), ws_conn()

    def lean_rx() -> None:
        for _ in range(rounds):
            conn.data_received(client_frame)

    def ws_rx() -> None:
        for _ in range(rounds):
            proto.receive_data(client_frame)
            for event in proto.events_received():
                event.data.decode()  # type: ignore[union-attr]

    def lean_tx() -> None:
        for _ in range(rounds):
            conn.send_frame(encode_text_frame(body))

    def ws_tx() -> None:
        for _ in range(rounds):
            proto.send_text(body)
            proto.data_to_send()

    def us(loop: Any) -> float:
        # CPU time, best of three: the machine is shared, wall time is not trustworthy.
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            loop()
            best = min(best, time.process_time() - started)
        return round(best / rounds * 1e6, 2)

    rows.append(
        {
            "parser": "lean Connection",
            "receive_us_per_frame": us(lean_rx),
            "encode_and_write_us": us(lean_tx),
            "heap_bytes_per_connection": round(heap_per(lean_conn)),
        }
    )
    rows.append(
        {
            "parser": "websockets ServerProtocol",
            "receive_us_per_frame": us(ws_rx),
            "encode_and_write_us": us(ws_tx),
            "heap_bytes_per_connection": round(heap_per(ws_conn)),
        }
    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = ["all", "fanout", "memory", "micro", "relay", "serve"]
    parser.add_argument("what", nargs="?", default="all", choices=commands)
    parser.add_argument("--mode", default="lean", choices=["lean", "asgi", "relay"])
    parser.add_argument(
        "--loop",
        action="append",
        choices=["auto", "asyncio"],
        help="server event loop: uvicorn's auto (uvloop) and/or asyncio; default both",
    )
    parser.add_argument("--connections", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--size", type=int, default=100, help="payload bytes per message")
    parser.add_argument("--idle", type=int, default=5000)
    parser.add_argument("--port", type=int, default=7104, help="relay: port to listen on")
    args = parser.parse_args()
    loops = args.loop or ["auto", "asyncio"]
    if args.what == "serve":
        serve(args.mode, loops[0])
        return
    if args.what == "relay":
        serve("relay", loops[0], args.port)
        return
    os.sched_setaffinity(0, {1})
    import uvloop

    def show(row: dict[str, Any]) -> None:
        print(json.dumps(row), flush=True)

    if args.what in ("all", "micro"):
        for row in micro():
            show(row)
    if args.what in ("all", "fanout"):
        for loop in loops:
            for mode, how in (("lean", "frame"), ("lean", "text"), ("asgi", "text")):
                run = fanout(mode, how, loop, args.connections, args.rounds, args.size)
                show(uvloop.run(run))
    if args.what in ("all", "memory"):
        for loop in loops:
            for mode in ("lean", "asgi"):
                show(uvloop.run(memory(mode, loop, args.idle)))


if __name__ == "__main__":
    main()
