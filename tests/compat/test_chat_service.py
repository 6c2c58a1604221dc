"""Chat Service (seed 001) at /compat/chat-service/ws: rooms, typing, presence."""

from __future__ import annotations

import websockets
from tests.compat.conftest import Raw, ws_base
from tests.realtime.conftest import Server


def url(server: Server, token: str | None = None, room: str | None = None) -> str:
    params = []
    if token:
        params.append(f"token={token}")
    if room:
        params.append(f"roomId={room}")
    return f"{ws_base(server)}/compat/chat-service/ws" + ("?" + "&".join(params) if params else "")


async def test_rooms_messages_typing_presence(server: Server) -> None:
    ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    ada = await Raw.connect(url(server, ada_token, "general"))
    assert await ada.next("room_joined") == {
        "type": "room_joined",
        "roomId": "general",
        "memberCount": 1,
    }
    bob = await Raw.connect(
        url(server, room="general"), additional_headers={"Authorization": f"Bearer {bob_token}"}
    )
    assert (await bob.next("room_joined"))["memberCount"] == 2

    await ada.send(
        {"type": "message", "roomId": "general", "content": "Hello everyone!", "timestamp": "x"}
    )
    for sock in (ada, bob):
        got = await sock.next("message")
        assert got["userId"] == ada_id
        assert got["username"] == "ada"
        assert (got["roomId"], got["content"]) == ("general", "Hello everyone!")
        assert got["timestamp"].endswith("Z")
        assert isinstance(got["messageId"], int)

    await bob.send({"type": "typing", "roomId": "general", "isTyping": True})
    assert await ada.next("typing_indicator") == {
        "type": "typing_indicator",
        "userId": bob_id,
        "roomId": "general",
        "isTyping": True,
    }

    # Presence reaches those who share a conversation (Palaver's visibility rule).
    await bob.close()
    assert (await ada.next("presence", userId=bob_id))["status"] == "offline"
    bob = await Raw.connect(url(server, bob_token, "general"))
    assert await ada.next("presence", userId=bob_id) == {
        "type": "presence",
        "userId": bob_id,
        "status": "online",
    }
    await bob.next("room_joined")

    # A second room joined on the socket; only joined rooms are delivered.
    await bob.send({"type": "join_room", "roomId": "development"})
    assert (await bob.next("room_joined"))["roomId"] == "development"
    await bob.send({"type": "message", "roomId": "development", "content": "dev talk"})
    assert (await bob.next("message"))["roomId"] == "development"
    await bob.send({"type": "leave_room", "roomId": "general"})
    await bob.next("room_left")
    await ada.send({"type": "message", "roomId": "general", "content": "after"})
    assert (await ada.next("message"))["content"] == "after"
    not_member = await bob.request(
        {"type": "message", "roomId": "general", "content": "x"}, "nothing"
    )
    assert not_member["code"] == "NOT_FOUND"
    assert [f["content"] for f in bob.seen if f["type"] == "message"] == ["dev talk"]

    await bob.close()
    await ada.close()


async def test_default_room_is_lobby(server: Server) -> None:
    _, token = await server.user("ada")
    sock = await Raw.connect(url(server, token))
    assert (await sock.next("room_joined"))["roomId"] == "lobby"
    await sock.close()


async def test_an_invalid_token_closes_the_connection_at_once(server: Server) -> None:
    for target in (url(server, "forged.token.value"), url(server)):
        sock = await Raw.connect(target)
        assert await sock.closed_with() == 1008
        assert sock.seen == []


async def test_bad_frames_get_error_frames(server: Server) -> None:
    _, token = await server.user("ada")
    sock = await Raw.connect(url(server, token))
    await sock.next("room_joined")
    await sock.send("nope")
    assert (await sock.next("error"))["code"] == "INVALID_JSON"
    await sock.send({"type": "message", "roomId": "lobby", "content": ""})
    assert (await sock.next("error"))["code"] == "EMPTY_CONTENT"
    await sock.send({"type": "shout"})
    assert (await sock.next("error"))["code"] == "UNKNOWN_TYPE"
    await sock.close()
    # The socket was closed by the client, not refused: the connection is usable.
    assert isinstance(sock.ws, websockets.ClientConnection)
