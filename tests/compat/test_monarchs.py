"""Monarchs (seed 000) at /compat/monarchs/ws: accounts, rooms and private messages."""

from __future__ import annotations

from tests.compat.conftest import Raw, ws_base
from tests.realtime.conftest import PASSWORD, Server


def url(server: Server) -> str:
    return f"{ws_base(server)}/compat/monarchs/ws"


async def logged_in(server: Server, name: str, *, register: bool = True) -> Raw:
    sock = await Raw.connect(url(server))
    if register:
        reply = await sock.request(
            {"type": "register", "username": name, "password": PASSWORD}, "success"
        )
        assert reply["type"] == "success", reply
    reply = await sock.request({"type": "login", "username": name, "password": PASSWORD}, "success")
    assert reply["type"] == "success", reply
    return sock


async def test_register_login_rooms_messages_and_private(server: Server) -> None:
    ada = await Raw.connect(url(server))
    # Nothing but register and login before logging in.
    denied = await ada.request({"type": "create_room", "room_name": "general"}, "success")
    assert denied["type"] == "error"
    assert denied["content"]
    await ada.request({"type": "register", "username": "ada", "password": PASSWORD}, "success")
    login = await ada.request({"type": "login", "username": "ada", "password": PASSWORD}, "success")
    assert login["content"] == "Login successful!"
    assert login["expiresIn"] == server.settings.access_token_ttl * 1000
    # The token is a Palaver access token: REST accepts it.
    me = await server.rest(login["token"], "GET", "/api/auth/me")
    assert me.json()["username"] == "ada"

    created = await ada.request({"type": "create_room", "room_name": "general"}, "success")
    assert created["type"] == "success"
    bob = await logged_in(server, "bob")
    joined = await bob.request({"type": "join_room", "room_name": "general"}, "success")
    assert joined["type"] == "success"
    assert (await ada.next("system"))["content"] == "bob joined"

    await ada.send({"type": "message", "content": "Hello everyone!"})
    for sock in (ada, bob):
        got = await sock.next("message")
        assert (got["room"], got["from"], got["content"]) == ("general", "ada", "Hello everyone!")

    await bob.send({"type": "private", "to_user": "ada", "content": "psst"})
    assert (await bob.next("success"))["content"].startswith("Private message sent")
    private = await ada.next("private")
    assert (private["from"], private["content"]) == ("bob", "psst")

    rooms = await ada.request({"type": "get_rooms"}, "rooms")
    assert rooms["rooms"] == [{"name": "general", "members": 2}]
    users = await ada.request({"type": "get_users"}, "users")
    assert users["users"] == ["bob"]

    left = await bob.request({"type": "leave"}, "success")
    assert left["type"] == "success"
    assert (await ada.next("system"))["content"] == "bob left"
    no_room = await bob.request({"type": "message", "content": "anyone?"}, "success")
    assert no_room["type"] == "error"
    await ada.close()
    await bob.close()


async def test_failures_answer_error_frames(server: Server) -> None:
    sock = await Raw.connect(url(server))
    bad = await sock.request({"type": "login", "username": "ghost", "password": "nope"}, "success")
    assert bad["type"] == "error"
    assert bad["code"] == "INVALID_CREDENTIALS"
    weak = await sock.request({"type": "register", "username": "eve", "password": "x"}, "success")
    assert weak["type"] == "error"
    assert weak["content"]
    await sock.close()
    ada = await logged_in(server, "ada")
    missing = await ada.request({"type": "join_room", "room_name": "nowhere"}, "success")
    assert missing["type"] == "error"
    assert missing["code"] == "NOT_FOUND"
    await ada.request({"type": "create_room", "room_name": "dup"}, "success")
    dup = await ada.request({"type": "create_room", "room_name": "dup"}, "success")
    assert dup["type"] == "error"
    assert dup["code"] == "CONFLICT"
    unknown = await ada.request({"type": "fly"}, "success")
    assert unknown["type"] == "error"
    assert unknown["code"] == "UNKNOWN_TYPE"
    await ada.close()


async def test_a_token_on_connect_logs_the_socket_in(server: Server) -> None:
    _, token = await server.user("ada")
    sock = await Raw.connect(f"{url(server)}?token={token}")
    created = await sock.request({"type": "create_room", "room_name": "r"}, "success")
    assert created["type"] == "success"
    await sock.close()
