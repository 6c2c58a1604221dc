"""Frames and their refusals as docs/protocol.md describes them: a send names one
recipient, an empty client_msg_id is no key, page sizes out of range are refused as over
REST, and the error table's codes are the ones sent."""

from __future__ import annotations

from .conftest import Server


async def test_a_send_with_both_recipients_is_refused(server: Server) -> None:
    _, ada = await server.user("ada")
    bob_id, _ = await server.user("bob")
    room = await server.room(ada, "general")
    c = await server.connect(ada, resume={room: 0})
    before = (await server.rest(ada, "GET", "/api/conversations")).json()
    for to in ("bob", bob_id):
        got = await c.request({"type": "send", "conversation_id": room, "to": to, "content": "hi"})
        assert (got["type"], got["code"], got["field"]) == ("error", "INVALID_FORMAT", "to"), got
    # Nothing was stored anywhere: not in the room, and no direct conversation opened.
    assert (await server.rest(ada, "GET", "/api/conversations")).json() == before
    assert [x["id"] for x in before] == [room]
    assert (await c.send_text(room, "still here"))["type"] == "ack"
    await c.close()


async def test_an_empty_client_msg_id_is_no_key(server: Server) -> None:
    _, ada = await server.user("ada")
    room = await server.room(ada, "general")
    c = await server.connect(ada, resume={room: 0})
    acks = [await c.send_text(room, text, client_msg_id="") for text in ("one", "two")]
    # A send with a reply takes the path that waits on the database: the same there.
    acks.append(
        await c.send_text(room, "three", client_msg_id="", reply_to_id=acks[0]["message_id"])
    )
    assert [a["type"] for a in acks] == ["ack"] * 3
    assert [a["duplicate"] for a in acks] == [False] * 3
    assert [a["client_msg_id"] for a in acks] == [None] * 3
    assert len({a["message_id"] for a in acks}) == 3
    page = await c.request({"type": "history", "conversation_id": room}, "history")
    texts = [m["content"] for m in page["messages"] if m["kind"] == "text"]
    assert texts == ["one", "two", "three"]
    await c.close()


async def test_history_limit_is_checked_like_rest(server: Server) -> None:
    _, ada = await server.user("ada")
    room = await server.room(ada, "general")
    c = await server.connect(ada, resume={room: 0})
    for n in range(55):
        await c.send_text(room, f"m{n}")
    for limit in (0, 201, 500, -1, "10", 2.5, True):
        frame = {"type": "history", "conversation_id": room, "limit": limit}
        got = await c.request(frame, "history")
        assert (got["type"], got["code"], got["field"]) == ("error", "INVALID_FORMAT", "limit"), (
            limit,
            got,
        )
    for limit in (0, 201, -1):
        rest = await server.rest(
            ada, "GET", f"/api/conversations/{room}/messages", params={"limit": limit}
        )
        assert rest.status_code == 422, (limit, rest.text)
    default = await c.request({"type": "history", "conversation_id": room}, "history")
    assert len(default["messages"]) == 50
    widest = await c.request({"type": "history", "conversation_id": room, "limit": 200}, "history")
    assert len(widest["messages"]) == 55
    one = await c.request({"type": "history", "conversation_id": room, "limit": 1}, "history")
    assert [m["content"] for m in one["messages"]] == ["m54"]
    await c.close()


async def test_create_room_and_auth_refusals_have_the_documented_codes(server: Server) -> None:
    _, ada = await server.user("ada")
    await server.room(ada, "general")
    c = await server.connect(ada)
    taken = await c.request({"type": "create_room", "name": "GENERAL"})
    assert (taken["type"], taken["code"], taken["field"]) == ("error", "CONFLICT", "name")
    odd = await c.request({"type": "create_room", "name": "a\u0007b"})
    assert (odd["type"], odd["code"], odd["field"]) == ("error", "VALIDATION_ERROR", "name")
    forged = await c.request({"type": "auth", "token": "not-a-token"}, "auth_ok")
    assert (forged["type"], forged["code"]) == ("error", "TOKEN_INVALID")
    assert await c.closed_with() == 4001
