"""The lean WebSocket path against a real uvicorn server on port 0, on both event loops.

Every scenario runs once on asyncio's loop and once on uvloop (what ``uvicorn`` picks in
production), each in its own loop with debug mode on.
"""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import struct
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from typing import Any

import httpx
import orjson
import pytest
import uvicorn
import uvloop
from fastapi import FastAPI, WebSocket
from uvicorn.server import ServerState
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from palaver.gateway.frames import apply_mask, encode_close_frame, encode_text_frame
from palaver.gateway.lean import (
    CLOSE_TOO_SLOW,
    Accept,
    Connection,
    GatewayHandler,
    LeanWebSocketProtocol,
    Reject,
    Request,
    lean_ws_protocol_factory,
)

LOOPS: dict[str, Callable[[], asyncio.AbstractEventLoop]] = {
    "asyncio": asyncio.new_event_loop,
    "uvloop": uvloop.new_event_loop,
}

Run = Callable[[Coroutine[Any, Any, None]], None]


@pytest.fixture(params=sorted(LOOPS))
def run(request: pytest.FixtureRequest) -> Run:
    def run(coro: Coroutine[Any, Any, None]) -> None:
        with asyncio.Runner(loop_factory=LOOPS[request.param], debug=True) as runner:
            runner.run(asyncio.wait_for(coro, 20))

    return run


class Handler(GatewayHandler):
    """Echoes, and records everything the transport tells it."""

    def __init__(self) -> None:
        self.conns: list[Connection] = []
        self.requests: list[Request] = []
        self.received: list[bytes] = []
        self.closed: asyncio.Queue[tuple[Connection, int]] = asyncio.Queue()

    async def authorize(self, request: Request) -> Accept | Reject:
        self.requests.append(request)
        await asyncio.sleep(0)
        token = request.query.get("token")
        if token == "boom":
            raise RuntimeError("authorize bug")
        if token != "good":
            return Reject(401, "UNAUTHORIZED", "Bad or missing token")
        return Accept(
            state={"user": "ada"},
            subprotocol=request.query.get("subprotocol"),
            headers=[("x-palaver", "1")],
        )

    def on_open(self, conn: Connection) -> None:
        self.conns.append(conn)

    def on_text(self, conn: Connection, data: bytes) -> None:
        self.received.append(data)
        if data == b"explode":
            raise RuntimeError("handler bug")
        if data == b"broadcast":
            frame = encode_text_frame(b'{"to":"all"}')
            for other in self.conns:
                other.send_frame(frame)
            return
        conn.send_text(data)

    def on_close(self, conn: Connection, code: int) -> None:
        self.closed.put_nowait((conn, code))


def asgi_app() -> FastAPI:
    app = FastAPI()

    @app.get("/rest")
    async def rest() -> dict[str, bool]:
        return {"ok": True}

    @app.websocket("/asgi-ws")
    async def asgi_ws(websocket: WebSocket) -> None:
        await websocket.accept()
        text = await websocket.receive_text()
        await websocket.send_text("asgi:" + text)
        await websocket.close()

    return app


class Server:
    def __init__(self, handler: Handler, protocol: type[LeanWebSocketProtocol], port: int):
        self.handler = handler
        self.protocol = protocol
        self.port = port

    @property
    def gateway(self) -> Any:
        return self.protocol.gateway

    def url(self, path: str = "/ws?token=good") -> str:
        return f"ws://127.0.0.1:{self.port}{path}"


@asynccontextmanager
async def serve(**settings: Any) -> AsyncIterator[Server]:
    handler = Handler()
    settings.setdefault("close_timeout", 0.5)
    protocol = lean_ws_protocol_factory(handler, **settings)
    config = uvicorn.Config(
        asgi_app(), host="127.0.0.1", port=0, ws=protocol, lifespan="off", log_level="warning"
    )
    async with running(config) as port:
        yield Server(handler, protocol, port)


@asynccontextmanager
async def running(config: uvicorn.Config) -> AsyncIterator[int]:
    """uvicorn's own startup and graceful shutdown, without its 0.1 s polling loop."""
    config.load()
    server = uvicorn.Server(config)
    server.lifespan = config.lifespan_class(config)
    await server.startup()
    try:
        yield server.servers[0].sockets[0].getsockname()[1]
    finally:
        await server.shutdown()


def client(server: Server, path: str = "/ws?token=good", **kwargs: Any) -> connect:
    kwargs.setdefault("compression", None)
    return connect(server.url(path), **kwargs)


async def closed_code(ws: ClientConnection) -> int | None:
    try:
        while True:
            await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None


class Raw:
    """A hand-driven client for what the websockets library refuses to send."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(
        cls, server: Server, headers: dict[str, str] | None = None, *, rcvbuf: int | None = None
    ) -> Raw:
        sock = socket.socket()
        if rcvbuf is not None:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.setblocking(False)
        await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", server.port))
        reader, writer = await asyncio.open_connection(sock=sock)
        raw = cls(reader, writer)
        fields = {
            "Host": "127.0.0.1",
            "Upgrade": "websocket",
            "Connection": "Upgrade",
            "Sec-WebSocket-Key": base64.b64encode(os.urandom(16)).decode(),
            "Sec-WebSocket-Version": "13",
        }
        fields.update(headers or {})
        head = "GET /ws?token=good HTTP/1.1\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in fields.items() if value)
        writer.write(head.encode() + b"\r\n")
        raw.status = int((await reader.readuntil(b"\r\n\r\n")).split(b" ", 2)[1])
        return raw

    status: int

    def send(self, opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True) -> None:
        self.writer.write(raw_frame(opcode, payload, fin=fin, mask=mask))

    async def read_frame(self) -> tuple[int, bytes]:
        b0, b1 = await self.reader.readexactly(2)
        length = b1 & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", await self.reader.readexactly(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", await self.reader.readexactly(8))
        return b0 & 0x0F, await self.reader.readexactly(length)

    async def close_code(self) -> int:
        while True:
            opcode, payload = await self.read_frame()
            if opcode == 0x8:
                return int.from_bytes(payload[:2], "big")

    def close(self) -> None:
        self.writer.transport.abort()


def raw_frame(
    opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0
) -> bytes:
    head = bytes([(0x80 if fin else 0) | rsv | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + apply_mask(payload, key)


# -- handshake ---------------------------------------------------------------------------


def test_bad_token_is_refused_with_401_json_before_any_frame(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            with pytest.raises(InvalidStatus) as info:
                async with client(server, "/ws?token=bad"):
                    pass
            response = info.value.response
            assert response.status_code == 401
            assert response.headers["Content-Type"] == "application/json"
            assert orjson.loads(response.body) == {
                "error": {"code": "UNAUTHORIZED", "message": "Bad or missing token"}
            }
            assert server.handler.conns == []
            assert len(server.gateway.registry) == 0

    run(scenario())


def test_request_view_and_connection_attributes(run: Run) -> None:
    async def scenario() -> None:
        async with (
            serve() as server,
            client(
                server,
                "/ws?token=good&room=a%20b&room=c",
                origin="http://palaver.test",
                additional_headers={"X-Trace": "t1"},
            ) as ws,
        ):
            assert ws.response is not None
            assert ws.response.headers["x-palaver"] == "1"
            await ws.send("hi")
            assert await ws.recv() == "hi"
            conn = server.handler.conns[0]
            assert conn.state == {"user": "ada"}
            assert conn.path == "/ws"
            assert conn.query == {"token": "good", "room": "a b"}
            assert conn.request.query_all("room") == ["a b", "c"]
            assert conn.request.headers["x-trace"] == conn.request.headers["X-TRACE"] == "t1"
            assert conn.request.origin == "http://palaver.test"
            assert conn.remote_address == ws.local_address[:2]
            assert conn.is_open
            assert conn.buffered_bytes == 0
            sock = conn._transport.get_extra_info("socket")
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)

    run(scenario())


@pytest.mark.parametrize(
    ("headers", "status"),
    [
        ({"Sec-WebSocket-Version": "8"}, 426),
        ({"Sec-WebSocket-Key": "short"}, 400),
        ({"Origin": "https://evil.test"}, 403),
    ],
)
def test_invalid_handshakes_are_refused(run: Run, headers: dict[str, str], status: int) -> None:
    async def scenario() -> None:
        async with serve(allowed_origins={"https://palaver.test"}) as server:
            raw = await Raw.open(server, headers)
            assert raw.status == status
            assert await raw.reader.read()  # the body, then EOF
            assert server.handler.requests == []
            raw.close()

    run(scenario())


def test_authorize_errors_and_subprotocols(run: Run) -> None:
    async def scenario() -> None:
        async with serve(allowed_origins={"https://palaver.test"}) as server:
            with pytest.raises(InvalidStatus) as info:
                async with client(server, "/ws?token=boom"):
                    pass
            assert info.value.response.status_code == 500
            with pytest.raises(InvalidStatus) as info:
                async with client(server, "/ws?token=good&subprotocol=nope"):
                    pass
            assert info.value.response.status_code == 500
            path = "/ws?token=good&subprotocol=palaver.v1"
            offered = ["chat", "palaver.v1"]
            async with client(
                server, path, subprotocols=offered, origin="https://palaver.test"
            ) as ws:
                assert ws.subprotocol == "palaver.v1"
                assert server.handler.requests[-1].subprotocols == offered

    run(scenario())


# -- messages ------------------------------------------------------------------------


def test_one_prebuilt_frame_reaches_every_client(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            clients = [await client(server) for _ in range(25)]
            while len(server.handler.conns) < 25:
                await asyncio.sleep(0.01)
            await clients[0].send("broadcast")
            assert [await ws.recv() for ws in clients] == ['{"to":"all"}'] * 25
            for ws in clients:
                await ws.close()

    run(scenario())


def test_fragmented_message_is_reassembled(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server, client(server) as ws:
            await ws.send(["déjà ", "vu ", "ok"])
            assert await ws.recv() == "déjà vu ok"

    run(scenario())


def test_frames_split_and_coalesced_across_reads(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            raw = await Raw.open(server)
            big = b"x" * 70_000
            data = raw_frame(1, b"one") + raw_frame(1, big[:60_000]) + raw_frame(9, b"p")
            for i in range(0, len(data), 4093):
                raw.writer.write(data[i : i + 4093])
                await raw.writer.drain()
                await asyncio.sleep(0)
            assert await raw.read_frame() == (1, b"one")
            assert await raw.read_frame() == (1, big[:60_000])
            assert await raw.read_frame() == (0xA, b"p")
            raw.send(1, b"tail", fin=False)
            raw.send(0, b"")
            assert await raw.read_frame() == (1, b"tail")
            raw.close()

    run(scenario())


def test_client_ping_is_answered(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server, client(server) as ws:
            pong = await ws.ping(b"abc")
            await asyncio.wait_for(pong, 2)

    run(scenario())


VIOLATIONS = {
    "frame-too-big": ([raw_frame(1, b"x" * (64 * 1024 + 1))], 1009),
    "message-too-big": (
        [raw_frame(1, b"x" * 40_000, fin=False), raw_frame(0, b"x" * 40_000)],
        1009,
    ),
    "invalid-utf8": ([raw_frame(1, b"ok \xff\xfe")], 1007),
    "invalid-utf8-fragmented": ([raw_frame(1, b"\xe2\x82", fin=False), raw_frame(0, b"(")], 1007),
    "binary": ([raw_frame(2, b"\x00\x01")], 1003),
    "unmasked": ([raw_frame(1, b"x", mask=False)], 1002),
    "rsv-bit": ([raw_frame(1, b"x", rsv=0x40)], 1002),
    "stray-continuation": ([raw_frame(0, b"x")], 1002),
    "interleaved-message": ([raw_frame(1, b"a", fin=False), raw_frame(1, b"b")], 1002),
    "long-control": ([raw_frame(9, b"x" * 126)], 1002),
    "fragmented-control": ([raw_frame(9, b"x", fin=False)], 1002),
    "reserved-data-opcode": ([raw_frame(3, b"x")], 1002),
    "reserved-control-opcode": ([raw_frame(0xB, b"x")], 1002),
    "one-byte-close": ([raw_frame(8, b"\x03")], 1002),
    "close-code-1005": ([raw_frame(8, b"\x03\xed")], 1002),
    "close-reason-not-utf8": ([raw_frame(8, b"\x03\xe8\xff")], 1007),
}


def test_protocol_violations_close_with_the_rfc_code(run: Run, subtests: pytest.Subtests) -> None:
    async def scenario() -> None:
        async with serve() as server:
            for case, (frames, code) in VIOLATIONS.items():
                with subtests.test(case):
                    raw = await Raw.open(server)
                    raw.writer.write(b"".join(frames))
                    assert await raw.close_code() == code
                    # Half-closed after the Close frame, never reset: the frame survives.
                    assert await raw.reader.read() == b""
                    _, reported = await server.handler.closed.get()
                    assert reported == code
                    assert server.handler.received == []
                    raw.close()

    run(scenario())


def test_oversized_frame_from_websockets_client_gets_1009(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server, client(server) as ws:
            await ws.send("y" * (64 * 1024 + 1))
            assert await closed_code(ws) == 1009

    run(scenario())


def test_invalid_utf8_from_websockets_client_gets_1007(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server, client(server) as ws:
            await ws.send(b"\xc3\x28", text=True)
            assert await closed_code(ws) == 1007

    run(scenario())


def test_handler_error_closes_with_1011(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server, client(server) as ws:
            await ws.send("explode")
            assert await closed_code(ws) == 1011

    run(scenario())


# -- closing -------------------------------------------------------------------------


def test_client_close_code_reaches_handler(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            async with client(server) as ws:
                await ws.close(4001, "bye")
                assert ws.close_code == 4001
            conn, code = await server.handler.closed.get()
            assert code == 4001
            assert conn.close_code == 4001
            assert not conn.is_open
            while len(server.gateway.registry):
                await asyncio.sleep(0.01)

    run(scenario())


def test_server_close_completes_handshake(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server, client(server) as ws:
            await ws.send("hello")
            await ws.recv()
            conn = server.handler.conns[0]
            with pytest.raises(ValueError, match="may not be sent"):
                conn.close(1005)
            with pytest.raises(ValueError, match="longer than 123"):
                conn.close(4100, "x" * 124)
            conn.close(4100, "go away")
            conn.send_frame(encode_text_frame(b"dropped"))
            conn.close(4200)
            assert await closed_code(ws) == 4100
            assert (await server.handler.closed.get())[1] == 4100
            assert server.handler.closed.empty()

    run(scenario())


def test_close_all_sends_1012_and_waits(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            clients = [await client(server) for _ in range(5)]
            while len(server.gateway.registry) < 5:
                await asyncio.sleep(0.01)
            assert server.gateway.close_all() == 5
            codes = [await closed_code(ws) for ws in clients]
            assert codes == [1012] * 5
            async with asyncio.timeout(2):
                await server.gateway.registry.wait_closed()
            assert [server.handler.closed.get_nowait()[1] for _ in range(5)] == [1012] * 5

    run(scenario())


def test_uvicorn_graceful_shutdown_closes_lean_sockets_with_1012(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            ws = await client(server)
            await ws.send("x")
            await ws.recv()
        assert await closed_code(ws) == 1012

    run(scenario())


# -- heartbeat and backpressure --------------------------------------------------------


def test_silent_client_is_reaped_and_live_one_kept(run: Run) -> None:
    async def scenario() -> None:
        # A generous pong deadline: a loaded CI machine may stall this loop a while.
        async with serve(ping_interval=0.1, ping_timeout=0.4) as server:
            silent = await Raw.open(server)
            async with client(server, ping_interval=None) as alive:
                conn, code = await asyncio.wait_for(server.handler.closed.get(), 3)
                assert code == 1011
                assert conn is server.handler.conns[0]
                await asyncio.sleep(0.6)  # more than one full ping round
                assert server.handler.closed.empty()
                await alive.send("still here")
                assert await alive.recv() == "still here"
                assert len(server.gateway.registry) == 1
            silent.close()

    run(scenario())


def test_slow_consumer_is_closed_and_others_keep_receiving(run: Run) -> None:
    async def scenario() -> None:
        async with serve(send_buffer_limit=64 * 1024) as server:
            slow = await Raw.open(server, rcvbuf=4096)
            async with client(server, max_size=None) as fast:
                while len(server.handler.conns) < 2:
                    await asyncio.sleep(0.01)
                slow_conn, fast_conn = server.handler.conns
                received: list[str] = []

                async def drain() -> None:
                    while True:
                        received.append(str(await fast.recv()))

                reader = asyncio.create_task(drain())
                sent = 0
                body = b"m" * 32_000
                while slow_conn.is_open:
                    frame = encode_text_frame(b"%06d" % sent + body)
                    for conn in server.handler.conns:
                        conn.send_frame(frame)
                    sent += 1
                    assert sent < 2_000, "slow consumer never cut off"
                    await asyncio.sleep(0)
                assert slow_conn.buffered_bytes >= 64 * 1024
                conn, code = await server.handler.closed.get()
                assert (conn, code) == (slow_conn, CLOSE_TOO_SLOW)
                for i in range(3):
                    fast_conn.send_frame(encode_text_frame(b"after%d" % i))
                while len(received) < sent + 3:
                    await asyncio.sleep(0.01)
                reader.cancel()
                assert [int(m[:6]) for m in received[:sent]] == list(range(sent))
                assert received[sent:] == ["after0", "after1", "after2"]
                assert fast_conn.is_open
                async with asyncio.timeout(3):
                    while slow_conn in server.gateway.registry:
                        await asyncio.sleep(0.02)
            slow.close()

    run(scenario())


# -- same port: delegate and REST ------------------------------------------------------


def test_asgi_websocket_route_and_rest_share_the_port(run: Run) -> None:
    async def scenario() -> None:
        async with serve() as server:
            async with client(server, "/asgi-ws") as ws:
                await ws.send("ping")
                assert await ws.recv() == "asgi:ping"
            async with httpx.AsyncClient() as http:
                response = await http.get(f"http://127.0.0.1:{server.port}/rest")
            assert response.json() == {"ok": True}
            assert server.handler.requests == []

    run(scenario())


def test_unbound_protocol_delegates_every_path(run: Run) -> None:
    async def scenario() -> None:
        config = uvicorn.Config(
            asgi_app(), port=0, ws=LeanWebSocketProtocol, lifespan="off", log_level="warning"
        )
        async with running(config) as port, connect(f"ws://127.0.0.1:{port}/asgi-ws") as ws:
            await ws.send("x")
            assert await ws.recv() == "asgi:x"

    run(scenario())


# -- frames --------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 125, 126, 65535, 65536])
def test_encode_text_frame_headers(size: int) -> None:
    frame = encode_text_frame(b"a" * size)
    assert frame[0] == 0x81
    assert frame.endswith(b"a" * size)
    header = len(frame) - size
    assert header == {0: 2, 125: 2, 126: 4, 65535: 4, 65536: 10}[size]
    assert encode_close_frame(1005) == b"\x88\x00"
    assert encode_close_frame(1000, "ok") == b"\x88\x04\x03\xe8ok"


# -- the protocol objects on a fake transport (edge cases the network cannot time) --------


class FakeTransport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.out = bytearray()
        self.state = "open"
        self.protocol: asyncio.BaseProtocol | None = None
        self.reading = True

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.out += data

    def is_closing(self) -> bool:
        return self.state in ("closed", "aborted")

    def close(self) -> None:
        self.state = "closed"

    def abort(self) -> None:
        self.state = "aborted"

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.state = "eof"

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 5555)}.get(name, default)

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def pause_reading(self) -> None:
        self.reading = False

    def resume_reading(self) -> None:
        self.reading = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def frames(self) -> list[tuple[int, bytes]]:
        frames, data = [], bytes(self.out)
        if data.startswith(b"HTTP/1.1"):
            data = data.partition(b"\r\n\r\n")[2]
        while data:
            length, start = data[1] & 0x7F, 2
            if length == 126:
                length, start = int.from_bytes(data[2:4], "big"), 4
            elif length == 127:
                length, start = int.from_bytes(data[2:10], "big"), 10
            frames.append((data[0] & 0x0F, data[start : start + length]))
            data = data[start + length :]
        return frames


HEAD = (
    b"GET /ws?token=good HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: Upgrade\r\n"
    b"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\n\r\n"
)


class Recorder(asyncio.Protocol):
    """Stands in for uvicorn's WebSocket protocol as the delegate."""

    def __init__(self, config: Any, server_state: Any, app_state: Any) -> None:
        self.calls: list[tuple[str, object]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.calls.append(("made", transport))

    def data_received(self, data: bytes) -> None:
        self.calls.append(("data", data))

    def eof_received(self) -> bool:
        self.calls.append(("eof", None))
        return True

    def pause_writing(self) -> None:
        self.calls.append(("pause", None))

    def resume_writing(self) -> None:
        self.calls.append(("resume", None))

    def connection_lost(self, exc: Exception | None) -> None:
        self.calls.append(("lost", exc))


def bound(**settings: Any) -> tuple[Handler, LeanWebSocketProtocol, FakeTransport]:
    handler = Handler()
    cls = lean_ws_protocol_factory(handler, **settings)
    protocol = cls(config=uvicorn.Config(asgi_app()), server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    return handler, protocol, transport


async def opened(**settings: Any) -> tuple[Handler, Connection, FakeTransport]:
    handler, protocol, transport = bound(**settings)
    protocol.data_received(HEAD)
    while not handler.conns:
        await asyncio.sleep(0)
    assert transport.out.startswith(b"HTTP/1.1 101 ")
    assert transport.protocol is handler.conns[0]
    transport.out.clear()
    return handler, handler.conns[0], transport


async def test_other_paths_are_forwarded_to_the_delegate_until_it_is_installed() -> None:
    _, protocol, transport = bound(delegate=Recorder)
    protocol.data_received(HEAD.replace(b"/ws?token=good", b"/asgi-ws"))
    protocol.data_received(b"early")
    assert protocol.eof_received() is True
    protocol.pause_writing()
    protocol.resume_writing()
    protocol.connection_lost(None)
    assert transport.protocol is None
    await asyncio.sleep(0)
    delegate = transport.protocol
    assert isinstance(delegate, Recorder)
    assert [name for name, _ in delegate.calls] == [
        "made",
        "data",
        "data",
        "eof",
        "pause",
        "resume",
        "lost",
    ]
    assert delegate.calls[1] == ("data", HEAD.replace(b"/ws?token=good", b"/asgi-ws"))


async def test_handshake_limits_without_a_delegate() -> None:
    _, protocol, transport = bound(delegate=None)
    protocol.data_received(HEAD.replace(b"/ws", b"/elsewhere"))
    assert transport.out.startswith(b"HTTP/1.1 404 ")
    assert transport.state == "closed"

    _, protocol, transport = bound()
    protocol.data_received(b"GET /ws HTTP/1.1\r\nx-filler: " + b"a" * 17_000)
    assert transport.out.startswith(b"HTTP/1.1 431 ")

    _, protocol, transport = bound()
    protocol.data_received(HEAD.replace(b"GET", b"POST"))
    assert transport.out.startswith(b"HTTP/1.1 405 ")

    handler, protocol, transport = bound()
    protocol.data_received(HEAD)
    protocol.data_received(b"x" * (64 * 1024 + 1))  # frames before our 101: not allowed
    assert transport.state == "aborted"
    protocol.connection_lost(None)
    await asyncio.sleep(0)
    assert handler.conns == []


async def test_bytes_sent_with_the_handshake_are_processed_after_on_open() -> None:
    handler, protocol, transport = bound()
    protocol.data_received(HEAD)
    protocol.data_received(raw_frame(1, b"early bird"))
    while not handler.conns:
        await asyncio.sleep(0)
    assert handler.received == [b"early bird"]
    assert transport.frames()[-1] == (1, b"early bird")
    handler.conns[0].connection_lost(None)


async def test_headers_split_byte_by_byte_and_long_lengths() -> None:
    handler, conn, _ = await opened(max_frame=100_000)
    medium, large = b"m" * 300, b"l" * 70_000
    for byte in raw_frame(1, medium) + raw_frame(1, large):
        conn.data_received(bytes([byte]))
    assert handler.received == [medium, large]
    conn.connection_lost(None)


async def test_closing_state_ignores_data_until_the_close_reply() -> None:
    handler, conn, transport = await opened()
    conn.pause_reading()
    assert not transport.reading
    conn.resume_reading()
    conn.close(4000)
    conn.data_received(raw_frame(1, b"late") + raw_frame(9, b"late ping"))
    assert transport.state == "open"
    conn.data_received(raw_frame(8, b"\x0f\xa0"))
    assert transport.state == "closed"
    assert handler.received == []
    assert transport.frames() == [(8, b"\x0f\xa0")]
    conn.shutdown()
    conn.connection_lost(None)
    with pytest.raises(RuntimeError, match="refused move CLOSED -> CLOSED"):
        conn.connection_lost(None)
    assert (await handler.closed.get())[1] == 4000


async def test_empty_close_frame_is_echoed_and_reported_as_1005() -> None:
    handler, conn, transport = await opened()
    conn.data_received(raw_frame(8, b""))
    assert transport.frames() == [(8, b"")]
    assert transport.state == "closed"
    conn.connection_lost(None)
    assert (await handler.closed.get())[1] == 1005


async def test_on_open_failure_closes_with_1011() -> None:
    class Broken(Handler):
        def on_open(self, conn: Connection) -> None:
            super().on_open(conn)
            raise RuntimeError("handler bug")

    handler = Broken()
    cls = lean_ws_protocol_factory(handler)
    protocol = cls(config=uvicorn.Config(asgi_app()), server_state=ServerState(), app_state={})
    transport = FakeTransport()
    protocol.connection_made(transport)
    protocol.data_received(HEAD)
    while not handler.conns:
        await asyncio.sleep(0)
    assert transport.frames()[-1] == (8, b"\x03\xf3internal error")
    assert transport.state == "eof"
    handler.conns[0].connection_lost(None)
    assert (await handler.closed.get())[1] == 1011


def test_settings_are_validated() -> None:
    with pytest.raises(ValueError, match="max_frame"):
        lean_ws_protocol_factory(Handler(), max_frame=10)
    with pytest.raises(ValueError, match="ping_interval"):
        lean_ws_protocol_factory(Handler(), ping_interval=0)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        Reject(status=200)
