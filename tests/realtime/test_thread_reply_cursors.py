"""A reply in a thread must not mark the main timeline read."""

from __future__ import annotations

from .conftest import Server


async def test_a_thread_reply_leaves_the_main_timeline_unread(server: Server) -> None:
    alice = await server.user("alice")
    bob = await server.user("bob")
    room = await server.room(alice[1], "general")
    r = await server.rest(bob[1], "POST", f"/api/conversations/{room}/join")
    assert r.status_code in (200, 201), r.text
    a = await server.connect(alice[1], resume={room: 0})
    b = await server.connect(bob[1], resume={room: 0})
    root = await b.send_text(room, "a question")
    await a.send_text(room, "news for @bob")
    await a.send_text(room, "and more")
    await server.services.messaging.flush_receipts()
    [conv] = (await server.rest(bob[1], "GET", "/api/conversations")).json()
    assert (conv["unread"], conv["mentions"]) == (2, 1)
    # Bob answers in the thread of his own question, without reading the timeline.
    await b.send_text(room, "an answer", thread_root_id=root["message_id"])
    await server.services.messaging.flush_receipts()
    [conv] = (await server.rest(bob[1], "GET", "/api/conversations")).json()
    assert (conv["unread"], conv["mentions"]) == (2, 1)
    await a.close()
    await b.close()
