"""A long thread read page by page, newest first, over the socket and REST: the
``before`` cursor of ``thread``."""

from __future__ import annotations

from .conftest import Server

REPLIES = 7


async def test_thread_pages_back_with_before(server: Server) -> None:
    _, alice = await server.user("alice")
    _, bob = await server.user("bob")
    room = await server.room(alice, "general")
    await server.join(bob, room)
    a = await server.connect(alice, resume={room: 0})
    b = await server.connect(bob, resume={room: 0})
    root = await a.send_text(room, "a question")
    for n in range(REPLIES):
        await b.send_text(room, f"reply {n}", thread_root_id=root["message_id"])
        await a.send_text(room, f"meanwhile {n}")
    end = (await a.send_text(room, "the end"))["seq"] + 1
    expected = [f"reply {n}" for n in range(REPLIES)]

    # Over the socket: the newest page first, then back to the beginning.
    seen: list[str] = []
    before = end
    pages = []
    for _ in range(REPLIES):  # bounded: a cursor that is ignored would loop forever
        page = await a.request(
            {"type": "thread", "root_id": root["message_id"], "before": before, "limit": 3},
            "thread",
        )
        assert page["type"] == "thread", page
        assert page["root"]["message_id"] == root["message_id"]
        assert page["summary"]["reply_count"] == REPLIES
        pages.append(([m["content"] for m in page["messages"]], page["has_more"]))
        seen[:0] = [m["content"] for m in page["messages"]]
        if not page["has_more"]:
            break
        before = page["messages"][0]["seq"]
    assert pages == [
        (["reply 4", "reply 5", "reply 6"], True),
        (["reply 1", "reply 2", "reply 3"], True),
        (["reply 0"], False),
    ]
    assert seen == expected

    # Over REST, the same pages.
    path = f"/api/messages/{root['message_id']}/thread"
    r = await server.rest(alice, "GET", path, params={"before": end, "limit": 4})
    assert r.status_code == 200, r.text
    newest = r.json()
    assert [m["content"] for m in newest["messages"]] == expected[3:]
    assert newest["has_more"] is True
    oldest_seq = newest["messages"][0]["seq"]
    r = await server.rest(alice, "GET", path, params={"before": oldest_seq, "limit": 4})
    assert r.status_code == 200, r.text
    assert [m["content"] for m in r.json()["messages"]] == expected[:3]
    assert r.json()["has_more"] is False
    # Without a cursor the page still starts at the oldest reply.
    r = await server.rest(alice, "GET", path, params={"limit": 2})
    assert [m["content"] for m in r.json()["messages"]] == expected[:2]
    r = await server.rest(alice, "GET", path, params={"before": -1})
    assert r.status_code == 422, r.text
    await a.close()
    await b.close()
