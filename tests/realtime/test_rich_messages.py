"""Edits, deletes, reactions, pins, replies, threads and mentions over a real server and
real sockets, on SQLite and PostgreSQL: live, after a resume, and refused to outsiders."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from palaver.config import Settings

from .conftest import Server, start_server


@pytest.fixture
async def rich_server(engine_settings: Settings) -> AsyncIterator[Server]:
    update = {"rate_messages_burst": 10_000, "rate_messages_per_second": 1e4}
    async for value in start_server(engine_settings.model_copy(update=update)):
        yield value


async def _room(server: Server) -> tuple[int, tuple[int, str], tuple[int, str]]:
    """A room owned by alice with bob as a plain member."""
    alice = await server.user("alice")
    bob = await server.user("bob")
    room = await server.room(alice[1], "general")
    r = await server.rest(bob[1], "POST", f"/api/conversations/{room}/join")
    assert r.status_code in (200, 201), r.text
    return room, alice, bob


async def test_edit_delete_react_pin_live_and_after_resume(rich_server: Server) -> None:
    server = rich_server
    room, (alice_id, alice), (bob_id, bob) = await _room(server)
    a = await server.connect(alice, resume={room: 0})
    b = await server.connect(bob, resume={room: 0})
    ack = await a.send_text(room, "helo")
    mid, base = ack["message_id"], ack["seq"]
    await b.wait_messages(room, base)
    # Bob goes away; what happens meanwhile reaches him when he resumes.
    await b.close()

    edited = await a.request({"type": "edit", "message_id": mid, "content": "hello"})
    assert edited["ok"] is True
    reacted = await a.request({"type": "react", "message_id": mid, "emoji": "👍"})
    assert reacted["changed"] is True
    again = await a.request({"type": "react", "message_id": mid, "emoji": "👍"})
    assert (again["changed"], again["seq"]) == (False, None)
    pinned = await a.request({"type": "pin", "message_id": mid})
    assert pinned["changed"] is True
    live = (await a.wait_messages(room, base + 3))[base - 1 :]
    assert [(m["kind"], m.get("ref_id"), m["content"]) for m in live] == [
        ("text", None, "helo"),
        ("edit", mid, "hello"),
        ("react", mid, "👍"),
        ("pin", mid, ""),
    ]
    assert [m["seq"] for m in live] == [base, base + 1, base + 2, base + 3]

    b2 = await server.connect(bob, resume={room: base})
    caught_up = await b2.wait_messages(room, 3)
    assert [(m["seq"] - base, m["kind"]) for m in caught_up] == [
        (1, "edit"),
        (2, "react"),
        (3, "pin"),
    ]
    # Bob may react (a member) but not edit alice's message, nor pin in a room.
    bob_edit = await b2.request({"type": "edit", "message_id": mid, "content": "mine"})
    assert bob_edit["code"] == "FORBIDDEN"
    bob_pin = await b2.request({"type": "pin", "message_id": mid, "pinned": False})
    assert bob_pin["code"] == "FORBIDDEN"
    assert (await b2.request({"type": "react", "message_id": mid, "emoji": "🎉"}))["ok"]

    history = await b2.request({"type": "history", "conversation_id": room, "limit": 50}, "history")
    [message] = [m for m in history["messages"] if m["kind"] == "text"]
    assert message["content"] == "hello"
    assert message["edited_at"] is not None
    assert message["pinned"] is True
    assert message["reactions"] == [
        {"emoji": "👍", "count": 1, "user_ids": [alice_id]},
        {"emoji": "🎉", "count": 1, "user_ids": [bob_id]},
    ]
    pins = await b2.request({"type": "pins", "conversation_id": room}, "pins")
    assert [m["message_id"] for m in pins["messages"]] == [mid]

    # Bob cannot delete alice's message; alice (the room's owner) can delete bob's.
    bob_ack = await b2.send_text(room, "oops")
    assert (await b2.request({"type": "delete", "message_id": mid}))["code"] == "FORBIDDEN"
    assert (await a.request({"type": "delete", "message_id": bob_ack["message_id"]}))["ok"]
    tombstone = await b2.next("message")
    while tombstone["kind"] != "delete":
        tombstone = await b2.next("message")
    assert tombstone["ref_id"] == bob_ack["message_id"]
    r = await server.rest(bob, "GET", f"/api/conversations/{room}/messages")
    gone = [m for m in r.json()["messages"] if m["id"] == bob_ack["message_id"]]
    assert gone[0]["content"] == ""
    assert gone[0]["deleted_at"] is not None

    # Edit history: moderators only.
    r = await server.rest(bob, "GET", f"/api/messages/{mid}/edits")
    assert r.status_code == 403
    r = await server.rest(alice, "GET", f"/api/messages/{mid}/edits")
    assert [e["content"] for e in r.json()] == ["helo"]
    # Unread counts messages only: "hello" (edited) and bob's deleted one... from alice's
    # side, bob's message is the only one from someone else.
    r = await server.rest(alice, "GET", "/api/conversations")
    [summary] = r.json()
    assert summary["last_message"]["kind"] == "text"
    await a.close()
    await b2.close()


async def test_outsiders_get_not_found(rich_server: Server) -> None:
    server = rich_server
    room, (_, alice), _ = await _room(server)
    _, eve = await server.user("eve")
    r = await server.rest(
        alice, "POST", f"/api/conversations/{room}/messages", json={"content": "x"}
    )
    mid = r.json()["id"]
    for method, path, body in (
        ("PATCH", f"/api/messages/{mid}", {"content": "y"}),
        ("DELETE", f"/api/messages/{mid}", None),
        ("PUT", f"/api/messages/{mid}/reactions/👍", None),
        ("PUT", f"/api/messages/{mid}/pin", None),
        ("GET", f"/api/messages/{mid}/thread", None),
        ("GET", f"/api/messages/{mid}/edits", None),
        ("GET", f"/api/conversations/{room}/pins", None),
        ("GET", "/api/messages/999999/thread", None),
    ):
        r = await server.rest(eve, method, path, json=body)
        assert r.status_code == 404, (method, path, r.text)
        assert r.json()["error"]["code"] == "NOT_FOUND"
    e = await server.connect(eve)
    for frame in (
        {"type": "edit", "message_id": mid, "content": "y"},
        {"type": "react", "message_id": mid, "emoji": "👍"},
        {"type": "thread", "root_id": mid},
        {"type": "delete", "message_id": mid},
    ):
        assert (await e.request(frame))["code"] == "NOT_FOUND"
    # Replying from outside, or to a message of another conversation, is refused too.
    other = await server.room(eve, "elsewhere")
    reply = await e.send_text(other, "hi", reply_to_id=mid)
    assert reply["code"] == "NOT_FOUND"
    await e.close()


async def test_threads_mentions_and_validation(rich_server: Server) -> None:
    server = rich_server
    room, (alice_id, alice), (bob_id, bob) = await _room(server)
    a = await server.connect(alice, resume={room: 0})
    b = await server.connect(bob, resume={room: 0})
    root = await a.send_text(room, "a question")
    r1 = await b.send_text(room, "an answer @alice", thread_root_id=root["message_id"])
    # Replying to a reply joins the root's thread.
    r2 = await b.send_text(room, "more", thread_root_id=r1["message_id"])
    await a.send_text(room, "quoting", reply_to_id=r1["message_id"])
    frames = [m for m in await a.wait_messages(room, root["seq"] + 3) if m["kind"] == "text"]
    assert frames[1]["thread_root_id"] == root["message_id"]
    assert frames[1]["mentions"] == ["alice"]
    assert frames[2]["thread_root_id"] == root["message_id"]
    assert frames[3]["reply_to_id"] == r1["message_id"]

    thread = await a.request({"type": "thread", "root_id": root["message_id"]}, "thread")
    assert [m["content"] for m in thread["messages"]] == ["an answer @alice", "more"]
    assert thread["summary"]["reply_count"] == 2
    assert thread["summary"]["repliers"] == [bob_id]
    assert (thread["unread"], thread["read_seq"]) == (2, 0)
    assert thread["root"]["thread"]["reply_count"] == 2
    # Thread replies are not in the conversation's unread count: they have their own.
    hello = (await server.connect(alice)).hello
    [conv] = hello["conversations"]
    assert conv["unread"] == 0
    assert conv["mentions"] == 0
    # alice read the conversation up to her own last message; the thread stays unread.
    done = await a.request({"type": "thread_read", "root_id": root["message_id"], "seq": r2["seq"]})
    assert done["read_seq"] == r2["seq"]
    r = await server.rest(alice, "GET", f"/api/messages/{root['message_id']}/thread")
    assert (r.json()["unread"], r.json()["read_seq"]) == (0, r2["seq"])

    # A top-level mention counts beside unread until the read cursor passes it;
    # @room from a plain member of a room notifies nobody.
    await b.send_text(room, "hey @Alice")
    await b.send_text(room, "@room lunch?")
    last = await b.send_text(room, "no mention")
    r = await server.rest(alice, "GET", "/api/conversations")
    [conv] = r.json()
    assert (conv["unread"], conv["mentions"]) == (3, 1)
    await server.rest(alice, "POST", f"/api/conversations/{room}/read", json={"seq": last["seq"]})
    await server.services.messaging.flush_receipts()
    [conv] = (await server.rest(alice, "GET", "/api/conversations")).json()
    assert (conv["unread"], conv["mentions"]) == (0, 0)
    # The owner's @room does count for bob.
    await a.send_text(room, "@room meeting")
    [conv] = (await server.rest(bob, "GET", "/api/conversations")).json()
    assert conv["mentions"] == 1

    # Bad reactions and edits are refused with a code, and change nothing.
    for emoji in ("", "abc", "x" * 80, "👍" * 20, "<b>"):
        bad = await a.request({"type": "react", "message_id": root["message_id"], "emoji": emoji})
        assert bad["code"] == "INVALID_FORMAT", emoji
    assert (await a.request({"type": "edit", "message_id": root["message_id"], "content": " "}))[
        "code"
    ] == "EMPTY_CONTENT"
    assert (
        await server.rest(
            alice, "PATCH", f"/api/messages/{root['message_id']}", json={"content": "x" * 10**6}
        )
    ).json()["error"]["code"] == "CONTENT_TOO_LONG"
    r = await server.rest(alice, "PUT", f"/api/messages/{root['message_id']}/reactions/:tada:")
    assert r.json() == {"changed": True, "seq": r.json()["seq"]}
    r = await server.rest(alice, "DELETE", f"/api/messages/{root['message_id']}/reactions/:tada:")
    assert r.json()["changed"] is True
    r = await server.rest(alice, "DELETE", f"/api/messages/{root['message_id']}/reactions/:tada:")
    assert r.json() == {"changed": False, "seq": None}
    # Gapless: every entry took the next number, refused ones took none.
    history = (await server.rest(alice, "GET", f"/api/conversations/{room}/messages")).json()
    seqs = [m["seq"] for m in history["messages"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert alice_id != bob_id
    await a.close()
    await b.close()


async def test_edits_carry_the_mentions_of_the_new_text(rich_server: Server) -> None:
    server = rich_server
    room, (alice_id, alice), (bob_id, bob) = await _room(server)
    a = await server.connect(alice, resume={room: 0})
    read = await a.send_text(room, "already read")
    unread = await b_send(server, bob, room, "not read yet")
    await server.rest(alice, "POST", f"/api/conversations/{room}/read", json={"seq": read["seq"]})
    await server.services.messaging.flush_receipts()
    b = await server.connect(bob, resume={room: unread["seq"]})
    # Bob adds "@alice" to a message she has not read: it now counts as a mention.
    done = await b.request(
        {"type": "edit", "message_id": unread["message_id"], "content": "not read yet @alice"}
    )
    assert done["ok"] is True
    entry = (await a.wait_messages(room, unread["seq"] + 1))[-1]
    assert (entry["kind"], entry["mentions"]) == ("edit", ["alice"])
    [conv] = (await server.rest(alice, "GET", "/api/conversations")).json()
    assert (conv["unread"], conv["mentions"]) == (1, 1)
    # An edit of a message bob had read adds no mention for him (his cursor is past it),
    # and a plain member's @room in an edit is plain text, as in a send.
    await a.request(
        {"type": "edit", "message_id": read["message_id"], "content": "already read @bob"}
    )
    await b.request({"type": "edit", "message_id": unread["message_id"], "content": "@room hi"})
    stored = (await server.rest(alice, "GET", f"/api/conversations/{room}/messages")).json()
    by_id = {m["id"]: m for m in stored["messages"]}
    assert by_id[read["message_id"]]["mentions"] == ["bob"]
    assert not by_id[unread["message_id"]].get("mentions")
    [conv] = (await server.rest(alice, "GET", "/api/conversations")).json()
    assert (conv["unread"], conv["mentions"]) == (1, 0)
    [conv] = (await server.rest(bob, "GET", "/api/conversations")).json()
    assert (conv["unread"], conv["mentions"]) == (0, 0)
    assert alice_id != bob_id
    await a.close()
    await b.close()


async def b_send(server: Server, token: str, room: int, text: str) -> dict[str, Any]:
    sock = await server.connect(token)
    try:
        return await sock.send_text(room, text)
    finally:
        await sock.close()


async def test_history_gives_each_reader_their_thread_unread(rich_server: Server) -> None:
    server = rich_server
    room, (alice_id, alice), (bob_id, bob) = await _room(server)
    a = await server.connect(alice, resume={room: 0})
    b = await server.connect(bob, resume={room: 0})
    root = await a.send_text(room, "root")
    await b.send_text(room, "one", thread_root_id=root["message_id"])
    two = await b.send_text(room, "two", thread_root_id=root["message_id"])
    await a.send_text(room, "three", thread_root_id=root["message_id"])

    def thread_of(page: dict[str, Any]) -> dict[str, Any]:
        [found] = [m for m in page["messages"] if m["seq"] == root["seq"]]
        thread: dict[str, Any] = found["thread"]
        return thread

    path = f"/api/conversations/{room}/messages"
    mine = thread_of((await server.rest(alice, "GET", path)).json())
    assert (mine["reply_count"], mine["read_seq"], mine["unread"]) == (3, 0, 2)
    theirs = thread_of((await server.rest(bob, "GET", path)).json())
    assert (theirs["read_seq"], theirs["unread"]) == (0, 1)
    await a.request({"type": "thread_read", "root_id": root["message_id"], "seq": two["seq"]})
    page = await a.request({"type": "history", "conversation_id": room}, "history")
    assert (thread_of(page)["read_seq"], thread_of(page)["unread"]) == (two["seq"], 0)
    assert alice_id != bob_id
    await a.close()
    await b.close()


async def test_a_deleted_message_leaves_none_of_its_texts_behind(rich_server: Server) -> None:
    """Edited over the socket and over REST, then deleted: no member reads any of its
    texts again, in history, on resume, in search or in its edit history, and what
    points at it (replies, its thread, the conversation list) shows the tombstone."""
    server = rich_server
    room, (_, alice), (_, bob) = await _room(server)
    _, carol = await server.user("carol")
    r = await server.rest(carol, "POST", f"/api/conversations/{room}/join")
    assert r.status_code in (200, 201), r.text
    a = await server.connect(alice, resume={room: 0})
    sent = await a.send_text(room, "original")
    mid, base = sent["message_id"], sent["seq"]
    edited = await a.request({"type": "edit", "message_id": mid, "content": "edited @bob"})
    assert edited["ok"] is True
    r = await server.rest(alice, "PATCH", f"/api/messages/{mid}", json={"content": "edited twice"})
    assert r.status_code == 200, r.text
    await a.request({"type": "pin", "message_id": mid})
    b = await server.connect(bob, resume={room: base})
    # Both in its thread, so the message stays the conversation's last one.
    reply = await b.send_text(room, "quoting it", reply_to_id=mid, thread_root_id=mid)
    in_thread = await b.send_text(room, "in its thread", thread_root_id=mid)
    # Indexed as "edited twice" before the delete: the delete must take it out.
    await server.services.indexer.run_once()
    assert (await a.request({"type": "delete", "message_id": mid}))["ok"] is True
    await a.wait_messages(room, in_thread["seq"] + 1)
    texts = ("original", "edited", "@bob", "twice")

    def leaks(frames: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
        return [
            (m["seq"], m["kind"], m["content"])
            for m in frames
            if any(t in m["content"] for t in texts) or "bob" in m.get("mentions", ())
        ]

    r = await server.rest(carol, "GET", f"/api/conversations/{room}/messages")
    history = r.json()["messages"]
    assert leaks(history) == []
    edits = [m for m in history if m["kind"] == "edit"]
    assert [(m["seq"] - base, m["ref_id"], m["content"]) for m in edits] == [
        (1, mid, ""),
        (2, mid, ""),
    ]
    by_id = {m["id"]: m for m in history}
    assert (by_id[mid]["content"], by_id[mid]["deleted_at"] > 0) == ("", True)
    assert by_id[reply["message_id"]]["reply_to_id"] == mid

    c = await server.connect(carol, resume={room: 0})
    replayed = await c.wait_messages(room, len(history))
    assert [m["seq"] for m in replayed] == [m["seq"] for m in history]
    assert leaks(replayed) == []
    socket_history = await c.request({"type": "history", "conversation_id": room}, "history")
    assert leaks(socket_history["messages"]) == []

    thread = await c.request({"type": "thread", "root_id": mid}, "thread")
    assert (thread["root"]["content"], thread["root"]["deleted_at"] > 0) == ("", True)
    assert [m["content"] for m in thread["messages"]] == ["quoting it", "in its thread"]
    pins = await c.request({"type": "pins", "conversation_id": room}, "pins")
    assert pins["messages"] == []
    [conv] = (await server.rest(carol, "GET", "/api/conversations")).json()
    last = conv["last_message"]
    assert (last["message_id"], last["content"], last["deleted_at"] > 0) == (mid, "", True)
    [conv] = (await server.rest(bob, "GET", "/api/conversations")).json()
    assert conv["mentions"] == 0

    await server.services.indexer.run_once()
    for word in ("original", "edited", "twice"):
        for token in (alice, bob, carol):
            found = await server.rest(token, "GET", "/api/search", params={"q": word})
            assert found.json()["results"] == [], (word, found.json())
    # The owner moderates the room: the earlier texts went with the message for her too.
    r = await server.rest(alice, "GET", f"/api/messages/{mid}/edits")
    assert (r.status_code, r.json()) == (200, [])
    for sock in (a, b, c):
        await sock.close()
