"""Mrezhen (seed 004) at /compat/mrezhen/ws: its documented flows and its ten error codes."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
from collections.abc import AsyncIterator

import orjson
import pytest
import websockets
from tests.compat.conftest import Raw, ws_base
from tests.realtime.conftest import Server, start_server

from palaver.compat.mrezhen import PATH
from palaver.config import Settings


def url(server: Server, token: str | None = None) -> str:
    base = f"{ws_base(server)}/compat/mrezhen/ws"
    return f"{base}?token={token}" if token else base


async def test_refused_with_401_before_the_handshake(server: Server) -> None:
    for target in (url(server), url(server, "not-a-jwt")):
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(target)
        assert refused.value.response.status_code == 401


async def test_direct_messages_acks_presence_history_and_ping(server: Server) -> None:
    ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    ada = await Raw.connect(url(server, ada_token))
    # The bearer header works as well as the query.
    bob = await Raw.connect(
        url(server), additional_headers={"Authorization": f"Bearer {bob_token}"}
    )

    # "from" comes from the token: a spoofed one is ignored.
    await ada.send({"type": "direct_message", "to": "bob", "content": "hi bob", "from": bob_id})
    ack = await ada.next("message_ack")
    assert ack["to"] == "bob"
    assert ack["status"] == "delivered"
    got = await bob.next("direct_message")
    assert got["message"]["from"] == ada_id
    assert got["message"]["content"] == "hi bob"
    assert got["message"]["id"] == ack["messageId"]
    assert "queued" not in got

    # By id too; the sender does not get its own message back.
    await bob.send({"type": "direct_message", "to": ada_id, "content": "hi ada"})
    assert (await bob.next("message_ack"))["to"] == ada_id
    assert (await ada.next("direct_message"))["message"]["content"] == "hi ada"
    assert not [
        f for f in bob.seen if f["type"] == "direct_message" and f["message"]["from"] == bob_id
    ]

    history = await ada.request(
        {"type": "get_history", "with": "bob", "limit": 10}, "message_history"
    )
    assert history["with"] == "bob"
    assert [(m["from"], m["content"]) for m in history["messages"]] == [
        (ada_id, "hi bob"),
        (bob_id, "hi ada"),
    ]
    online = await ada.request({"type": "get_online_users"}, "online_users")
    assert online["users"] == [bob_id]
    pong = await ada.request({"type": "ping"}, "pong")
    assert pong["timestamp"].endswith("Z")

    await bob.close()
    offline = await ada.next("presence", userId=bob_id, status="offline")
    assert offline["onlineUsers"] == []
    bob = await Raw.connect(url(server, bob_token))
    online_again = await ada.next("presence", userId=bob_id, status="online")
    assert online_again["onlineUsers"] == [bob_id]
    await ada.close()
    await bob.close()


async def test_offline_messages_are_queued_and_delivered_once(server: Server) -> None:
    _, ada_token = await server.user("ada")
    _, bob_token = await server.user("bob")
    ada = await Raw.connect(url(server, ada_token))
    await ada.send({"type": "direct_message", "to": "bob", "content": "while you were out"})
    assert (await ada.next("message_ack"))["status"] == "queued"
    await ada.send({"type": "direct_message", "to": "bob", "content": "and this"})
    assert (await ada.next("message_ack"))["status"] == "queued"

    bob = await Raw.connect(url(server, bob_token))
    first = await bob.next("direct_message")
    second = await bob.next("direct_message")
    assert [first["message"]["content"], second["message"]["content"]] == [
        "while you were out",
        "and this",
    ]
    assert first["queued"] is True
    assert second["queued"] is True
    # Live now: not queued.
    await ada.send({"type": "direct_message", "to": "bob", "content": "live"})
    live = await bob.next("direct_message")
    assert live["message"]["content"] == "live"
    assert "queued" not in live
    await server.services.messaging.flush_receipts()
    await bob.close()

    # Delivered once: the next connection gets nothing old.
    bob = await Raw.connect(url(server, bob_token))
    await ada.send({"type": "direct_message", "to": "bob", "content": "newest"})
    got = await bob.next("direct_message")
    assert got["message"]["content"] == "newest"
    assert [f["message"]["content"] for f in bob.seen if f["type"] == "direct_message"] == [
        "newest"
    ]
    await ada.close()
    await bob.close()


async def test_the_ten_error_codes(server: Server) -> None:
    _, ada_token = await server.user("ada")
    await server.user("bob")
    ada = await Raw.connect(url(server, ada_token))

    async def code_of(frame: str | dict[str, object]) -> str:
        await ada.send(frame)
        error = await ada.next("error")
        assert set(error) >= {"type", "code", "message"}
        return str(error["code"])

    assert await code_of("{not json") == "INVALID_JSON"
    assert await code_of("[1, 2]") == "INVALID_FORMAT"
    assert await code_of({"to": "bob"}) == "MISSING_TYPE"
    assert await code_of({"type": "teleport"}) == "UNKNOWN_TYPE"
    assert await code_of({"type": "direct_message", "content": "x"}) == "MISSING_RECIPIENT"
    assert await code_of({"type": "direct_message", "to": "nobody", "content": "x"}) == (
        "MISSING_RECIPIENT"
    )
    assert await code_of({"type": "direct_message", "to": "bob", "content": "  "}) == (
        "EMPTY_CONTENT"
    )
    assert await code_of({"type": "direct_message", "to": "bob", "content": "x" * 5001}) == (
        "CONTENT_TOO_LONG"
    )
    assert await code_of({"type": "direct_message", "to": "ada", "content": "me"}) == (
        "SELF_MESSAGE"
    )
    assert await code_of({"type": "get_history", "with": "bob", "limit": "ten"}) == (
        "INVALID_FORMAT"
    )
    await ada.close()


async def test_rate_limited_and_internal_error(server: Server) -> None:
    strict = server.services.settings.model_copy(
        update={"rate_messages_burst": 2, "rate_messages_per_second": 0.01}
    )
    server.services.messaging.settings = strict
    _, ada_token = await server.user("ada")
    await server.user("bob")
    ada = await Raw.connect(url(server, ada_token))
    codes = []
    for i in range(3):
        await ada.send({"type": "direct_message", "to": "bob", "content": f"m{i}"})
        frame = await ada.request({"type": "ping"}, "pong")
        codes.append(frame["type"])
    errors = [f["code"] for f in ada.seen if f["type"] == "error"]
    assert errors == ["RATE_LIMITED"]

    # A storage failure is told as INTERNAL_ERROR (one of the ten), nothing acknowledged.
    async def broken(*args: object, **kwargs: object) -> None:
        raise RuntimeError("boom")

    server.services.conversations.resolve_user = broken  # type: ignore[method-assign]
    await ada.send({"type": "direct_message", "to": "bob", "content": "x"})
    assert (await ada.next("error"))["code"] == "INTERNAL_ERROR"
    await ada.close()


async def test_frames_over_64_kb_close_the_socket(server: Server) -> None:
    _, token = await server.user("ada")
    ada = await Raw.connect(url(server, token))
    await ada.send('{"type": "ping", "pad": "' + "x" * 70_000 + '"}')
    assert await ada.closed_with() == 1009


@pytest.fixture
async def small_buffer_server(settings: Settings) -> AsyncIterator[Server]:
    """A server that closes a socket with 4008 once 4 KiB wait in its send buffer."""
    tight = settings.model_copy(
        update={
            "rate_messages_burst": 10_000,
            "rate_messages_per_second": 10_000.0,
            "max_message_length": 50_000,
            "ws_send_buffer": 4096,
        }
    )
    async for value in start_server(tight):
        yield value


async def read_until_close(reader: asyncio.StreamReader) -> tuple[list[bytes], int]:
    """The text frames a server sent on a raw socket, up to its Close frame, and the
    close code."""
    texts: list[bytes] = []
    async with asyncio.timeout(10):
        while True:
            head = await reader.readexactly(2)
            opcode, size = head[0] & 0x0F, head[1] & 0x7F
            if size == 126:
                size = int.from_bytes(await reader.readexactly(2))
            elif size == 127:
                size = int.from_bytes(await reader.readexactly(8))
            payload = await reader.readexactly(size)
            if opcode == 0x8:
                return texts, int.from_bytes(payload[:2])
            if opcode == 0x1:
                texts.append(payload)


def ids(client: Raw) -> list[int]:
    return [f["message"]["id"] for f in client.seen if f["type"] == "direct_message"]


async def test_a_backlog_cut_off_by_a_full_send_buffer_is_sent_on_the_next_connection(
    small_buffer_server: Server,
) -> None:
    """Mrezhen has no delivery receipts: a message counts as delivered once written.
    When the send buffer overflows (4008), what was not written before the close must
    not count, or the next connection, which resumes after the delivered messages,
    never sends it."""
    server = small_buffer_server
    _, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    ada = await Raw.connect(url(server, ada_token))
    sent: list[int] = []
    for i in range(160):
        await ada.send(
            {"type": "direct_message", "to": "bob", "content": f"{i:02d}" + "x" * 49_000}
        )
        ack = await ada.next("message_ack")
        assert ack["status"] == "queued"
        sent.append(ack["messageId"])

    # Bob connects with a tiny receive window and reads nothing for a while: his
    # backlog fills the server's send buffer and the socket is closed with 4008.
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    port = int(server.base.rsplit(":", 1)[1])
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=2**20)
    key = base64.b64encode(os.urandom(16)).decode()
    head = [
        f"GET {PATH}?token={bob_token} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
    ]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
    assert b" 101 " in await reader.readuntil(b"\r\n\r\n")
    await ada.next("presence", userId=bob_id, status="offline")
    # Everything the server wrote before closing is read now (it waits a while for the
    # reply to its Close frame before dropping the connection).
    texts, code = await read_until_close(reader)
    writer.close()
    assert code == 4008
    first = [orjson.loads(t)["message"]["id"] for t in texts]
    assert first == sent[: len(first)]
    assert len(first) < len(sent), "the send buffer never filled"
    await server.services.messaging.flush_receipts()

    # Each connection resumes after what the last one was written (the server may cut
    # it off with 4008 again): every message arrives, and once.
    received = first
    while len(received) < len(sent):
        bob = await Raw.connect(url(server, bob_token))
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(10):
                while len(received) + len(ids(bob)) < len(sent) and not bob.done:
                    await asyncio.sleep(0.05)
        await bob.close()
        if not ids(bob):
            break
        received = received + ids(bob)
        await server.services.messaging.flush_receipts()
    assert received == sent
    await ada.close()
