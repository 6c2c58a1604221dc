"""The Distributed (seed 002) and Scalable (seed 003) chat events on one Socket.IO
endpoint, driven by python-socketio and by Node.js socket.io-client."""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import aiohttp
import httpx
import pytest
import socketio
from tests.compat.conftest import NodeSio, Sio
from tests.realtime.conftest import PASSWORD, Server, start_server

from palaver.config import Settings


async def email_user(server: Server, email: str) -> tuple[int, str]:
    """Seed 002's REST: register by e-mail, log in for ``{token}``."""
    async with httpx.AsyncClient(base_url=server.base) as http:
        r = await http.post("/api/auth/register", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        r = await http.post("/api/auth/login", json={"email": email, "password": PASSWORD})
        assert r.status_code == 200, r.text
        return r.json()["user"]["id"], r.json()["token"]


async def test_seed_002_rooms_with_python_socketio(server: Server) -> None:
    transport = "websocket"
    _, ada_token = await email_user(server, "ada@example.com")
    _, bob_token = await email_user(server, "bob@example.com")
    ada = await Sio.connect(server.base, ada_token, transport)
    bob = await Sio.connect(server.base, bob_token, transport)
    assert (await ada.call("join_room", {"room": "general"}))["ok"] is True
    await bob.call("join_room", {"room": "general"})
    assert await ada.next("system") == {"message": "bob joined"}

    sent = await ada.call("send_message", {"room": "general", "content": "hello"})
    assert sent["ok"] is True
    # Addresses are private: the sender sees hers, others the part before the @.
    for sock, address in ((ada, "ada@example.com"), (bob, "ada")):
        got = await sock.next("message")
        assert got["id"] == sent["id"]
        assert (got["room"], got["senderEmail"], got["content"]) == ("general", address, "hello")
        assert got["createdAt"].endswith("Z")

    # The REST history of the room has the same shape.
    r = await server.rest(bob_token, "GET", "/api/messages/general", params={"limit": 50})
    last = r.json()[-1]
    assert {k: last[k] for k in ("id", "room", "senderEmail", "content")} == {
        "id": sent["id"],
        "room": "general",
        "senderEmail": "ada",
        "content": "hello",
    }

    refused = await bob.call("send_message", {"room": "elsewhere", "content": "x"})
    assert refused["ok"] is False
    assert refused["error"]["code"] == "NOT_FOUND"
    assert (await bob.next("error"))["code"] == "NOT_FOUND"
    await ada.close()
    await bob.close()


async def test_handshake_needs_a_valid_token(server: Server) -> None:
    for token in ("", "forged"):
        client = socketio.AsyncClient(reconnection=False)
        with pytest.raises(socketio.exceptions.ConnectionError):
            await client.connect(server.base, auth={"token": token}, transports=["websocket"])
    # The Authorization header and the token query work too.
    _, token = await server.user("ada")
    for kwargs in (
        {"headers": {"Authorization": f"Bearer {token}"}},
        {"url": f"{server.base}?token={token}"},
    ):
        client = socketio.AsyncClient(reconnection=False)
        url = str(kwargs.pop("url", server.base))
        await client.connect(url, transports=["websocket"], **kwargs)  # type: ignore[arg-type]
        assert client.connected
        await client.disconnect()


async def test_seed_003_conversations_receipts_typing_presence(server: Server) -> None:
    ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    # Seed 003's REST: create-or-get the direct conversation, no "type" needed.
    r = await server.rest(ada_token, "POST", "/api/conversations", json={"participantId": bob_id})
    assert r.status_code == 201, r.text
    cid = r.json()["id"]
    again = await server.rest(bob_token, "POST", "/api/conversations", json={"userId": ada_id})
    assert again.status_code == 200
    assert again.json()["id"] == cid

    ada = await Sio.connect(server.base, ada_token)
    bob = await Sio.connect(server.base, bob_token)
    assert await ada.next("user:online") == {"userId": bob_id}
    assert (await ada.call("conversation:join", {"conversationId": cid}))["success"] is True
    await bob.call("conversation:join", cid)

    ack = await ada.call(
        "message:send", {"conversationId": cid, "content": "hi bob", "tempId": "t-1"}
    )
    assert ack["success"] is True
    message = ack["message"]
    assert (message["conversation_id"], message["sender_id"], message["content"]) == (
        cid,
        ada_id,
        "hi bob",
    )
    got = await bob.next("message:new")
    assert got == message
    # A retried send with the same tempId returns the original message.
    retry = await ada.call(
        "message:send", {"conversationId": cid, "content": "hi bob", "tempId": "t-1"}
    )
    assert retry["duplicate"] is True
    assert retry["message"]["id"] == message["id"]

    # Bob's socket received it: Ada hears it was delivered; then Bob reads it.
    delivered = await ada.next("message:delivered")
    assert (delivered["userId"], delivered["messageId"]) == (bob_id, message["id"])
    await bob.call("message:read", {"messageId": message["id"], "conversationId": cid})
    read = await ada.next("message:read")
    assert (read["userId"], read["messageId"], read["conversationId"]) == (
        bob_id,
        message["id"],
        cid,
    )

    await bob.call("typing:start", {"conversationId": cid})
    assert (await ada.next("typing:start"))["userId"] == bob_id
    await bob.call("typing:stop", {"conversationId": cid})
    assert (await ada.next("typing:stop"))["userId"] == bob_id

    # Outsiders get NOT_FOUND for a conversation that exists.
    _, eve_token = await server.user("eve")
    eve = await Sio.connect(server.base, eve_token)
    refused = await eve.call("conversation:join", {"conversationId": cid})
    assert refused["error"]["code"] == "NOT_FOUND"
    refused = await eve.call("message:read", {"messageId": message["id"]})
    assert refused["error"]["code"] == "NOT_FOUND"
    refused = await eve.call("message:send", {"conversationId": cid, "content": "x"})
    assert refused["error"]["code"] == "NOT_FOUND"
    await eve.close()

    await bob.close()
    offline = await ada.next("user:offline")
    assert offline["userId"] == bob_id
    assert offline["lastSeen"].endswith("Z")
    await ada.close()


async def test_seed_003_send_names_one_conversation_and_an_empty_temp_id_is_none(
    server: Server,
) -> None:
    _, ada_token = await server.user("ada")
    bob_id, _ = await server.user("bob")
    r = await server.rest(ada_token, "POST", "/api/conversations", json={"userId": bob_id})
    cid = r.json()["id"]
    other = await server.room(ada_token, "elsewhere")
    ada = await Sio.connect(server.base, ada_token)
    acks = [
        await ada.call("message:send", {"conversationId": cid, "content": text, "tempId": ""})
        for text in ("one", "two")
    ]
    assert [a["duplicate"] for a in acks] == [False, False]
    assert acks[0]["message"]["id"] != acks[1]["message"]["id"]
    # The same conversation under both spellings is fine; two different ones are not.
    same = await ada.call(
        "message:send", {"conversationId": cid, "conversation_id": str(cid), "content": "three"}
    )
    assert same["success"] is True
    refused = await ada.call(
        "message:send", {"conversationId": cid, "conversation_id": other, "content": "x"}
    )
    assert refused["error"]["code"] == "INVALID_FORMAT"
    for room in (cid, other):
        history = await server.rest(ada_token, "GET", f"/api/conversations/{room}/messages")
        texts = [m["content"] for m in history.json()["messages"] if m["kind"] == "text"]
        assert texts == (["one", "two", "three"] if room == cid else [])
    await ada.close()


async def test_seed_003_rest_endpoints(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as http:
        r = await http.post(
            "/api/auth/register",
            json={"username": "ada", "email": "ada@example.com", "password": PASSWORD},
        )
        assert r.status_code == 201
        r = await http.post(
            "/api/auth/login", json={"email": "ada@example.com", "password": PASSWORD}
        )
        token = r.json()["token"]
        me = await http.get("/api/auth/me", headers={"Authorization": f"Bearer {token}"})
        assert me.json()["username"] == "ada"
    bob_id, _ = await server.user("bob")
    found = await server.rest(token, "GET", "/api/users/search", params={"query": "bo"})
    assert [u["id"] for u in found.json()] == [bob_id]
    r = await server.rest(token, "POST", "/api/conversations", json={"userId": "bob"})
    cid = r.json()["id"]
    await server.rest(token, "POST", f"/api/conversations/{cid}/messages", json={"content": "yo"})
    listed = await server.rest(token, "GET", "/api/conversations")
    assert [c["id"] for c in listed.json()] == [cid]
    history = await server.rest(token, "GET", f"/api/conversations/{cid}/messages")
    assert [m["content"] for m in history.json()["messages"]] == ["yo"]
    no_type = await server.rest(token, "POST", "/api/conversations", json={"name": "x"})
    assert no_type.status_code == 422
    assert (await server.rest(token, "POST", "/api/auth/logout")).status_code == 204
    assert (await server.rest(token, "GET", "/api/auth/me")).status_code == 401


@pytest.mark.parametrize("transport", ["websocket", "polling"])
async def test_both_dialects_with_node_socket_io_client(server: Server, transport: str) -> None:
    _ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    r = await server.rest(ada_token, "POST", "/api/conversations", json={"userId": bob_id})
    cid = r.json()["id"]
    ada = await NodeSio.start(server.base, ada_token, transport)
    bob = await NodeSio.start(server.base, bob_token, transport)
    await ada.wait("connect")
    await bob.wait("connect")

    # Seed 002 on Ada's socket.
    assert (await ada.call("join_room", {"room": "lounge"}))["ok"] is True
    await ada.emit("send_message", {"room": "lounge", "content": "node says hi"})
    got = await ada.event("message")
    assert (got["room"], got["content"]) == ("lounge", "node says hi")

    # Seed 003 on Bob's socket; Ada's seed 002 socket does not receive seed 003 events.
    assert (await bob.call("conversation:join", {"conversationId": cid}))["success"] is True
    ack = await bob.call("message:send", {"conversationId": cid, "content": "dm from node"})
    assert ack["success"] is True
    new = await bob.event("message:new")
    assert (new["sender_id"], new["content"]) == (bob_id, "dm from node")

    bad = await NodeSio.start(server.base, "forged", transport)
    refused = await bad.wait("connect_error")
    assert refused["connect_error"]["data"]["code"] == "TOKEN_INVALID"
    for client in (ada, bob, bad):
        await client.close()


async def test_expose_emails_shows_addresses_to_everyone(settings: Settings) -> None:
    async for server in start_server(settings.model_copy(update={"expose_emails": True})):
        _, ada_token = await email_user(server, "ada@example.com")
        _, bob_token = await email_user(server, "bob@example.com")
        ada = await Sio.connect(server.base, ada_token, "websocket")
        bob = await Sio.connect(server.base, bob_token, "websocket")
        await ada.call("join_room", {"room": "general"})
        await bob.call("join_room", {"room": "general"})
        await ada.call("send_message", {"room": "general", "content": "hello"})
        assert (await bob.next("message"))["senderEmail"] == "ada@example.com"
        await ada.close()
        await bob.close()


async def test_browsers_of_other_sites_are_refused(settings: Settings) -> None:
    """The same Origin rule as /ws: the server's own origin, or ws_allowed_origins."""
    allowed = settings.model_copy(update={"ws_allowed_origins": ["https://chat.example.com"]})
    async for server in start_server(allowed):
        _, token = await server.user("ada")
        # A session of our own: a refused handshake leaves the client's unclosed.
        async with aiohttp.ClientSession() as session:
            evil = socketio.AsyncClient(reconnection=False, http_session=session)
            with pytest.raises(socketio.exceptions.ConnectionError):
                await evil.connect(
                    server.base,
                    auth={"token": token},
                    transports=["websocket"],
                    headers={"Origin": "https://evil.example"},
                )
        for origin in ("https://chat.example.com", server.base):
            client = socketio.AsyncClient(reconnection=False)
            await client.connect(
                server.base,
                auth={"token": token},
                transports=["websocket"],
                headers={"Origin": origin},
            )
            assert client.connected
            await client.disconnect()


async def test_seed_003_long_temp_ids_are_told_apart_by_their_whole_value(
    server: Server,
) -> None:
    """A tempId is kept to 64 characters in the store: two that share their first 64
    characters are still two sends, and a retry of either is still its duplicate."""
    _, ada_token = await server.user("ada")
    cid = await server.room(ada_token, "general")
    ada = await Sio.connect(server.base, ada_token)
    prefix = "device-7f3c2a9e-5b1d-4e8a-9c0f-2d6b8e4a1c3f:conversation-general:"
    assert len(prefix) == 65
    long_one = prefix + "1"
    # What a long tempId's key looks like, sent as a tempId of its own.
    lookalike = (
        "sha256:"
        + base64.urlsafe_b64encode(hashlib.sha256(long_one.encode()).digest()).rstrip(b"=").decode()
    )
    sends = [
        ("one", long_one),
        ("two", prefix + "2"),
        ("three", prefix[:64]),
        ("four", lookalike),
        ("five", 10**70),
    ]

    async def send(content: str, temp: object) -> dict[str, Any]:
        ack: dict[str, Any] = await ada.call(
            "message:send", {"conversationId": cid, "content": content, "tempId": temp}
        )
        assert ack["success"] is True, ack
        return ack

    first = [await send(content, temp) for content, temp in sends]
    assert [a["duplicate"] for a in first] == [False] * len(sends)
    assert [a["message"]["content"] for a in first] == [content for content, _ in sends]
    assert len({a["message"]["id"] for a in first}) == len(sends)
    # Retries, whatever their content, come back as the original of their own tempId.
    retries = [await send("again", temp) for _, temp in sends]
    assert [a["duplicate"] for a in retries] == [True] * len(sends)
    assert [a["message"]["id"] for a in retries] == [a["message"]["id"] for a in first]
    history = await server.rest(ada_token, "GET", f"/api/conversations/{cid}/messages")
    texts = [m["content"] for m in history.json()["messages"] if m["kind"] == "text"]
    assert texts == [content for content, _ in sends]
    await ada.close()
