"""The native protocol over a real server: handshake, frames, errors, limits."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import orjson
import pytest
import websockets

from palaver.config import Settings
from tests.realtime.conftest import Server, start_server


async def handshake_status(server: Server, url: str, **kwargs: object) -> tuple[int, bytes]:
    with pytest.raises(websockets.InvalidStatus) as info:
        await websockets.connect(url, **kwargs)  # type: ignore[arg-type]
    response = info.value.response
    return response.status_code, response.body or b""


async def test_missing_or_bad_token_is_refused_before_any_frame(server: Server) -> None:
    status, body = await handshake_status(server, server.ws_url)
    assert status == 401
    assert orjson.loads(body)["error"]["code"] == "UNAUTHORIZED"
    status, body = await handshake_status(server, f"{server.ws_url}?token=garbage")
    assert status == 401
    assert orjson.loads(body)["error"]["code"] == "TOKEN_INVALID"


async def test_token_in_header_and_revoked_session(server: Server) -> None:
    _, token = await server.user("ada")
    ws = await websockets.connect(
        server.ws_url, additional_headers={"Authorization": f"Bearer {token}"}
    )
    hello = orjson.loads(await ws.recv())
    assert hello["type"] == "hello"
    assert hello["user"]["username"] == "ada"
    # Logging out closes the socket at once with 4003, and the token no longer opens one.
    assert (await server.rest(token, "POST", "/api/auth/logout")).status_code == 204
    async with asyncio.timeout(5):
        await ws.wait_closed()
    assert ws.close_code == 4003
    status, body = await handshake_status(server, f"{server.ws_url}?token={token}")
    assert status == 401
    assert orjson.loads(body)["error"]["code"] == "SESSION_REVOKED"


async def test_origin_allow_list(server: Server) -> None:
    _, token = await server.user("ada")
    url = f"{server.ws_url}?token={token}"
    status, _ = await handshake_status(server, url, origin="https://evil.example")
    assert status == 403
    same = server.base.replace("http://", "http://")
    ok = await websockets.connect(url, origin=same)  # type: ignore[arg-type]
    assert orjson.loads(await ok.recv())["type"] == "hello"
    await ok.close()


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (b"{not json", "INVALID_JSON"),
        (b"[1, 2]", "INVALID_FORMAT"),
        (b'{"content": "x"}', "MISSING_TYPE"),
        (b'{"type": "teleport"}', "UNKNOWN_TYPE"),
        (b'{"type": "send", "content": "x"}', "MISSING_RECIPIENT"),
        (b'{"type": "send", "conversation_id": 1, "content": "   "}', "EMPTY_CONTENT"),
        (b'{"type": "send", "conversation_id": 1}', "EMPTY_CONTENT"),
        (b'{"type": "send", "conversation_id": "x", "content": "a"}', "INVALID_FORMAT"),
        (b'{"type": "send", "conversation_id": 999, "content": "a"}', "NOT_FOUND"),
        (b'{"type": "send", "to": "nobody", "content": "a"}', "NOT_FOUND"),
    ],
)
async def test_bad_frames_get_an_error_and_the_socket_stays(
    server: Server, frame: bytes, code: str
) -> None:
    _, token = await server.user("ada")
    client = await server.connect(token)
    await client.ws.send(frame.decode())
    error = await client.next("error")
    assert error["code"] == code
    assert error["message"]
    pong = await client.request({"type": "ping"}, "pong")
    assert pong["timestamp"] > 0
    await client.close()


async def test_errors_echo_the_frame_id(server: Server) -> None:
    _, token = await server.user("ada")
    client = await server.connect(token)
    await client.ws.send('{"type": "send", "id": "abc", "conversation_id": 1, "content": ""}')
    error = await client.next("error")
    assert error["id"] == "abc"
    assert error["code"] == "EMPTY_CONTENT"
    await client.close()


async def test_content_too_long_and_self_message(server: Server) -> None:
    _, ada = await server.user("ada")
    room = await server.room(ada, "general")
    client = await server.connect(ada)
    too_long = await client.send_text(room, "x" * 5001)
    assert too_long["code"] == "CONTENT_TOO_LONG"
    assert too_long["max_length"] == 5000
    exactly = await client.send_text(room, "x" * 5000)
    assert exactly["type"] == "ack"
    self_dm = await client.request({"type": "send", "to": "ada", "content": "me"}, "ack")
    assert self_dm["code"] == "SELF_MESSAGE"
    await client.close()


async def test_frames_over_64k_close_with_1009(server: Server) -> None:
    _, token = await server.user("ada")
    client = await server.connect(token)
    await client.ws.send("x" * (65 * 1024))
    assert await client.closed_with() == 1009


async def test_non_members_learn_nothing(server: Server) -> None:
    _, ada = await server.user("ada")
    _, eve = await server.user("eve")
    group = await server.rest(
        ada, "POST", "/api/conversations", json={"type": "group", "name": "secret"}
    )
    gid = group.json()["id"]
    client = await server.connect(eve)
    hidden = await client.send_text(gid, "let me in")
    missing = await client.send_text(987654, "hello?")
    assert hidden["code"] == missing["code"] == "NOT_FOUND"
    assert hidden["message"] == missing["message"]
    rest_hidden = await server.rest(eve, "GET", f"/api/conversations/{gid}/messages")
    rest_missing = await server.rest(eve, "GET", "/api/conversations/987654/messages")
    assert rest_hidden.status_code == rest_missing.status_code == 404
    assert rest_hidden.json() == rest_missing.json()
    await client.close()


async def test_rate_limit_gives_retry_after(settings: Settings) -> None:
    # A bucket of 30 that refills slowly, so the arithmetic does not depend on speed.
    slow = settings.model_copy(update={"rate_messages_per_second": 0.5})
    async for server in start_server(slow):
        _, ada = await server.user("ada")
        room = await server.room(ada, "general")
        client = await server.connect(ada)
        replies = await asyncio.gather(*(client.send_text(room, f"m{i}") for i in range(35)))
        limited = [r for r in replies if r["type"] == "error"]
        acked = [r for r in replies if r["type"] == "ack"]
        assert len(acked) == 30
        assert len(limited) == 5
        assert all(r["code"] == "RATE_LIMITED" and r["retry_after"] > 0 for r in limited)
        # Nothing refused was stored: the log holds exactly the acknowledged messages.
        history = await server.rest(ada, "GET", f"/api/conversations/{room}/messages?limit=100")
        assert [m["content"] for m in history.json()["messages"]] == [
            f"m{i}" for i in range(35) if replies[i]["type"] == "ack"
        ]
        await client.close()


async def test_connections_per_ip_are_limited(settings: Settings) -> None:
    limited = settings.model_copy(update={"max_connections_per_ip": 2})
    async for server in start_server(limited):
        _, token = await server.user("ada")
        first = await server.connect(token)
        second = await server.connect(token)
        status, body = await handshake_status(server, f"{server.ws_url}?token={token}")
        assert status == 429
        assert orjson.loads(body)["error"]["code"] == "RATE_LIMITED"
        await first.close()
        # A closed socket frees its place.
        async with asyncio.timeout(5):
            while True:
                try:
                    third = await server.connect(token)
                    break
                except websockets.InvalidStatus:
                    await asyncio.sleep(0.05)
        await second.close()
        await third.close()


async def test_application_ping_and_asyncapi(server: Server) -> None:
    _, token = await server.user("ada")
    client = await server.connect(token)
    pong = await client.request({"type": "ping"}, "pong")
    assert abs(pong["timestamp"] - client.hello["server_time"]) < 60_000
    await client.close()
    async with httpx.AsyncClient(base_url=server.base) as http:
        doc = (await http.get("/asyncapi.json")).json()
    assert doc["asyncapi"].startswith("3.")
    assert "/ws" in str(doc["servers"]) or "ws" in doc["channels"]


def test_asyncapi_describes_every_client_frame() -> None:
    from palaver.core.protocol import _PARSERS
    from palaver.http.asyncapi import CLIENT_FRAMES, document

    assert set(CLIENT_FRAMES) == set(_PARSERS)
    messages = document()["channels"]["ws"]["messages"]
    assert {f"client.{name}" for name in _PARSERS} <= set(messages)


async def test_open_sockets_keep_no_credentials(server: Server) -> None:
    from palaver.gateway.handshake import Request

    _, token = await server.user("ada")
    client = await server.connect(token)
    hub_clients = [c for clients in _hub(server).by_user.values() for c in clients]
    assert len(hub_clients) == 1
    request = hub_clients[0].outlet.request  # type: ignore[attr-defined]
    assert isinstance(request, Request)
    assert request.path == "/ws"
    assert token not in repr(request._head)
    assert request.query == {}
    await client.close()


def _hub(server: Server) -> Any:
    from palaver.gateway.native import NativeHandler

    gateway = server.gateway
    assert isinstance(gateway.handler, NativeHandler)
    return gateway.handler.hub
