"""Delivery guarantees over a real server: every device, once, in order, across reconnects."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from palaver.config import Settings
from palaver.core.models import now_ms
from tests.realtime.conftest import Client, Server, start_server


def seqs(messages: list[dict[str, object]]) -> list[object]:
    return [m["seq"] for m in messages]


async def test_message_reaches_every_device_of_every_member(server: Server) -> None:
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    ada_phone = await server.connect(ada, resume={})
    ada_laptop = await server.connect(ada, resume={})
    bob_phone = await server.connect(bob, resume={})
    await bob_phone.request({"type": "join", "room": "general"})
    ack = await ada_phone.send_text(room, "hello", client_msg_id="c-1")
    assert ack["type"] == "ack"
    assert ack["seq"] == 2  # 1 is "bob joined"
    for client in (ada_phone, ada_laptop, bob_phone):
        got = await client.wait_messages(room, 2)
        assert [m["content"] for m in got] == ["bob joined", "hello"]
        assert got[1]["sender"] == "ada"
        assert got[1]["client_msg_id"] == "c-1"
    for client in (ada_phone, ada_laptop, bob_phone):
        await client.close()


async def test_retry_with_same_client_msg_id_is_not_stored_twice(server: Server) -> None:
    _, ada = await server.user("ada")
    room = await server.room(ada, "general")
    client = await server.connect(ada, resume={})
    first = await client.send_text(room, "once", client_msg_id="same")
    again = await client.send_text(room, "once", client_msg_id="same")
    assert first["duplicate"] is False
    assert again["duplicate"] is True
    assert (again["message_id"], again["seq"]) == (first["message_id"], first["seq"])
    rest = await server.rest(
        ada,
        "POST",
        f"/api/conversations/{room}/messages",
        json={"content": "once", "client_msg_id": "same"},
    )
    assert rest.status_code == 200
    assert rest.json()["duplicate"] is True
    history = await server.rest(ada, "GET", f"/api/conversations/{room}/messages")
    assert [m["content"] for m in history.json()["messages"]] == ["once"]
    await asyncio.sleep(0.1)
    assert len(client.messages) == 1
    await client.close()


async def test_resume_delivers_what_was_missed_once_in_order(server: Server) -> None:
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    sender = await server.connect(ada, resume={})
    reader = await server.connect(bob, resume={})
    await reader.request({"type": "join", "room": "general"})
    for i in range(5):
        await sender.send_text(room, f"before {i}")
    received = await reader.wait_messages(room, 6)
    cursor = received[-1]["seq"]
    await reader.close()
    for i in range(30):
        await sender.send_text(room, f"while away {i}")
    back = await server.connect(bob, resume={room: cursor})
    missed = await back.wait_messages(room, 30)
    await sender.send_text(room, "live again")
    everything = await back.wait_messages(room, 31)
    await asyncio.sleep(0.2)
    assert seqs(back.messages) == list(range(cursor + 1, cursor + 32))
    assert [m["content"] for m in missed[:2]] == ["while away 0", "while away 1"]
    assert everything[-1]["content"] == "live again"
    await sender.close()
    await back.close()


async def test_offline_user_receives_messages_on_next_connect(server: Server) -> None:
    _, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    sender = await server.connect(ada, resume={})
    for i in range(3):
        ack = await sender.request({"type": "send", "to": "bob", "content": f"dm {i}"}, "ack")
        assert ack["type"] == "ack"
    conversation = ack["conversation_id"]
    # Bob was never connected; a simple client that sends no resume still gets them.
    bob_socket = await server.connect(bob)
    got = await bob_socket.wait_messages(conversation, 3)
    assert [m["content"] for m in got] == ["dm 0", "dm 1", "dm 2"]
    # Once acknowledged as delivered, the next connection starts after them.
    await bob_socket.request({"type": "delivered", "conversation_id": conversation, "seq": 3})
    await server.services.messaging.flush_receipts()
    await bob_socket.close()
    again = await server.connect(bob)
    await asyncio.sleep(0.8)
    assert again.messages == []
    listing = await server.rest(bob, "GET", "/api/conversations")
    item = listing.json()[0]
    assert item["type"] == "direct"
    assert item["name"] == "ada"
    assert item["unread"] == 3
    assert bob_id
    await sender.close()
    await again.close()


async def test_receipts_and_server_side_unread_counts(server: Server) -> None:
    ada_id, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    sender = await server.connect(ada, resume={})
    for i in range(4):
        ack = await sender.request({"type": "send", "to": bob_id, "content": f"m{i}"}, "ack")
    cid = ack["conversation_id"]
    reader = await server.connect(bob, resume={})
    await reader.wait_messages(cid, 4)
    phone = await server.connect(bob, resume={})
    listing = await server.rest(bob, "GET", "/api/conversations")
    assert listing.json()[0]["unread"] == 4
    await reader.request({"type": "read", "conversation_id": cid, "seq": 3})
    receipt = await sender.next("receipt")
    while receipt["user_id"] != bob_id:  # the sender's own cursor moved when it sent
        receipt = await sender.next("receipt")
    assert receipt == {
        "type": "receipt",
        "conversation_id": cid,
        "user_id": bob_id,
        "read_seq": 3,
        "delivered_seq": 3,
    }
    # Every device of the reader learns it too, and the count agrees everywhere.
    phone_receipt = await phone.next("receipt")
    while phone_receipt["user_id"] != bob_id:
        phone_receipt = await phone.next("receipt")
    assert phone_receipt["read_seq"] == 3
    listing = await server.rest(bob, "GET", "/api/conversations")
    assert listing.json()[0]["unread"] == 1
    # Cursors never move back.
    await reader.request({"type": "read", "conversation_id": cid, "seq": 1})
    await server.services.messaging.flush_receipts()
    listing = await server.rest(bob, "GET", "/api/conversations")
    assert listing.json()[0]["unread"] == 1
    # Sending marks everything before one's own message as read.
    await reader.send_text(cid, "reply")
    await server.services.messaging.flush_receipts()
    listing = await server.rest(bob, "GET", "/api/conversations")
    assert listing.json()[0]["unread"] == 0
    sender_view = await server.rest(ada, "GET", "/api/conversations")
    assert sender_view.json()[0]["unread"] == 1
    assert ada_id
    for client in (sender, reader, phone):
        await client.close()


async def test_receipts_are_coalesced(server: Server) -> None:
    _, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    sender = await server.connect(ada, resume={})
    for i in range(20):
        ack = await sender.request({"type": "send", "to": "bob", "content": f"m{i}"}, "ack")
    cid = ack["conversation_id"]
    reader = await server.connect(bob, resume={})
    await reader.wait_messages(cid, 20)
    writes = 0
    store = server.services.store
    original = store.advance_cursors

    async def counting(updates):  # type: ignore[no-untyped-def]
        nonlocal writes
        writes += 1
        return await original(updates)

    store.advance_cursors = counting  # type: ignore[method-assign]
    for seq in range(1, 21):
        await reader.ws.send(f'{{"type": "read", "conversation_id": {cid}, "seq": {seq}}}')
    await asyncio.sleep(0.6)
    assert 1 <= writes <= 3
    member = await store.get_member(cid, bob_id)
    assert member is not None
    assert member.read_seq == 20
    await sender.close()
    await reader.close()


async def test_typing_is_forwarded_throttled_and_not_stored(server: Server) -> None:
    ada_id, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    typist = await server.connect(ada, resume={})
    watcher = await server.connect(bob, resume={})
    await watcher.request({"type": "join", "room": "general"})
    for _ in range(5):
        await typist.ws.send(f'{{"type": "typing", "conversation_id": {room}}}')
    event = await watcher.next("typing")
    assert event["user_id"] == ada_id
    assert event["typing"] is True
    assert 0 < event["expires_in"] <= 10
    await asyncio.sleep(0.3)
    assert all(f["type"] != "typing" for f in list(watcher.frames._queue))  # type: ignore[attr-defined]
    await typist.ws.send(f'{{"type": "typing", "conversation_id": {room}, "typing": false}}')
    stop = await watcher.next("typing")
    assert stop["typing"] is False
    history = await server.rest(ada, "GET", f"/api/conversations/{room}/messages")
    assert [m["kind"] for m in history.json()["messages"]] == ["system"]
    await typist.close()
    await watcher.close()


async def test_presence_online_away_offline_and_online_users(server: Server) -> None:
    ada_id, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    _, eve = await server.user("eve")
    await server.room(ada, "general")
    watcher = await server.connect(ada, resume={})
    stranger = await server.connect(eve, resume={})
    bob_socket = await server.connect(bob, resume={})
    await bob_socket.request({"type": "join", "room": "general"})
    bob_laptop = await server.connect(bob, resume={})
    online = await watcher.request({"type": "get_online_users"}, "online_users")
    assert [u["id"] for u in online["users"]] == [bob_id]
    await bob_socket.request({"type": "presence", "status": "away"})
    away = await watcher.next("presence")
    while away["status"] != "away":
        away = await watcher.next("presence")
    assert away["user_id"] == bob_id
    await bob_socket.close()
    await bob_laptop.close()
    offline = await watcher.next("presence")
    while offline["status"] != "offline":
        offline = await watcher.next("presence")
    assert offline["last_seen_at"] >= now_ms() - 10_000
    # Eve shares no conversation with Bob: she saw none of it.
    await asyncio.sleep(0.1)
    assert all(
        f["type"] != "presence" or f["user_id"] != bob_id
        for f in list(stranger.frames._queue)  # type: ignore[attr-defined]
    )
    none_left = await watcher.request({"type": "get_online_users"}, "online_users")
    assert none_left["users"] == []
    assert ada_id
    await watcher.close()
    await stranger.close()


async def test_quick_reconnect_leaves_the_user_online(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    ada_id, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(bob, "general")
    joined = await server.rest(ada, "POST", f"/api/conversations/{room}/join")
    assert joined.status_code < 300, joined.text
    watcher = await server.connect(bob, resume={})
    store = server.services.store
    update_user = store.update_user

    async def slow_update_user(*args: Any, **kwargs: Any) -> Any:
        # Recording "last seen" on a busy database outlasts a reconnect.
        await asyncio.sleep(0.3)
        return await update_user(*args, **kwargs)

    monkeypatch.setattr(store, "update_user", slow_update_user)
    first = await server.connect(ada, resume={})
    await first.close()
    second = await server.connect(ada, resume={})
    await asyncio.sleep(0.6)
    online = await watcher.request({"type": "get_online_users"}, "online_users")
    assert [u["id"] for u in online["users"]] == [ada_id]
    seen = [
        f["status"]
        for f in list(watcher.frames._queue)  # type: ignore[attr-defined]
        if f["type"] == "presence" and f["user_id"] == ada_id
    ]
    assert seen
    assert seen[-1] == "online"
    await second.close()
    await watcher.close()


async def test_token_renewed_in_band_or_socket_closed_with_4001(server: Server) -> None:
    user_id, token = await server.user("ada")
    claims = server.services.tokens.verify(token)
    ttl = server.services.tokens.ttl
    short = server.services.tokens.issue(user_id, claims.session_id, now=time.time() - ttl + 2)
    expiring = await server.connect(short)
    renewed = await server.connect(short)
    ok = await renewed.request({"type": "auth", "token": token}, "auth_ok")
    assert ok["token_expires_at"] > now_ms()
    assert await expiring.closed_with(timeout=10) == 4001
    pong = await renewed.request({"type": "ping"}, "pong")
    assert pong["type"] == "pong"
    _, other = await server.user("bob")
    refused = await renewed.request({"type": "auth", "token": other}, "auth_ok")
    assert refused["code"] == "FORBIDDEN"
    await renewed.close()


async def test_history_paging_and_retention_gap(server: Server) -> None:
    _, ada = await server.user("ada")
    room = await server.room(ada, "general")
    client = await server.connect(ada, resume={})
    for i in range(10):
        await client.send_text(room, f"m{i}")
    page = await server.rest(ada, "GET", f"/api/conversations/{room}/messages?limit=4")
    assert [m["seq"] for m in page.json()["messages"]] == [7, 8, 9, 10]
    older = await server.rest(ada, "GET", f"/api/conversations/{room}/messages?before=7&limit=4")
    assert [m["seq"] for m in older.json()["messages"]] == [3, 4, 5, 6]
    newer = await server.rest(ada, "GET", f"/api/conversations/{room}/messages?after=8")
    assert [m["seq"] for m in newer.json()["messages"]] == [9, 10]
    over_socket = await client.request(
        {"type": "history", "conversation_id": room, "after": 2, "limit": 3}, "history"
    )
    assert [m["seq"] for m in over_socket["messages"]] == [3, 4, 5]
    # Retention removes the first five; asking for them says so explicitly.
    store = server.services.store
    cutoff_row = (await store.get_messages(room, after_seq=5, limit=1))[0]
    deleted = await store.purge_messages_before(cutoff_row.created_at)
    assert deleted >= 1
    conversation = await store.get_conversation(room)
    assert conversation is not None
    gap_page = await server.rest(ada, "GET", f"/api/conversations/{room}/messages?after=0")
    gap = gap_page.json()["gap"]
    assert gap == {"from_seq": 1, "to_seq": conversation.min_seq - 1}
    await client.close()
    back = await server.connect(ada, resume={room: 0})
    frame = await back.next("gap")
    assert frame["from_seq"] == 1
    assert frame["to_seq"] == conversation.min_seq - 1
    got = await back.wait_messages(room, 10 - frame["to_seq"])
    assert seqs(got) == list(range(frame["to_seq"] + 1, 11))
    await back.close()


async def test_a_lost_wake_up_is_caught_by_the_sweep(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palaver.core.models import NewMessage
    from palaver.gateway import hub

    monkeypatch.setattr(hub, "SWEEP_SECONDS", 0.2)
    async for server in start_server(settings):
        ada_id, ada = await server.user("ada")
        room = await server.room(ada, "general")
        client = await server.connect(ada, resume={})
        # Stored but never announced: as if the broker lost the publication.
        await server.services.store.append_messages(
            [NewMessage(conversation_id=room, sender_id=ada_id, content="silent")], now_ms()
        )
        got = await client.wait_messages(room, 1, timeout=5)
        assert got[0]["content"] == "silent"
        await client.close()


async def presence_of(watcher: Client, user_id: int) -> str:
    """The status in the next presence frame about ``user_id``."""
    frame = await watcher.next("presence", timeout=10)
    while frame["user_id"] != user_id:
        frame = await watcher.next("presence", timeout=10)
    return str(frame["status"])


async def test_idle_user_turns_away_and_back_online(settings: Settings) -> None:
    quick = settings.model_copy(update={"presence_away_after": 1})
    async for server in start_server(quick):
        ada_id, ada = await server.user("ada")
        bob_id, bob = await server.user("bob")
        await server.rest(
            ada, "POST", "/api/conversations", json={"type": "direct", "user_id": bob_id}
        )
        watcher = await server.connect(ada, resume={})
        idle = await server.connect(bob, resume={})

        assert await presence_of(watcher, bob_id) == "online"
        # Neither socket of Bob does anything (the watcher keeps pinging: pings are
        # heartbeats, not activity).
        while (status := await presence_of(watcher, bob_id)) != "away":
            assert status == "online"
        await idle.request({"type": "history", "conversation_id": 1}, "history")
        assert await presence_of(watcher, bob_id) == "online"
        assert ada_id
        await watcher.close()
        await idle.close()


async def test_presence_visible_to_everyone_when_configured(settings: Settings) -> None:
    wide = settings.model_copy(update={"presence_visibility": "everyone"})
    async for server in start_server(wide):
        _, eve = await server.user("eve")
        bob_id, bob = await server.user("bob")
        stranger = await server.connect(eve, resume={})
        bob_socket = await server.connect(bob, resume={})
        frame = await stranger.next("presence")
        while frame["user_id"] != bob_id:
            frame = await stranger.next("presence")
        assert frame["status"] == "online"
        online = await stranger.request({"type": "get_online_users"}, "online_users")
        assert bob_id in [u["id"] for u in online["users"]]
        await stranger.close()
        await bob_socket.close()


async def test_a_client_that_keeps_cursors_is_never_resumed_for_it(server: Server) -> None:
    import websockets

    from tests.realtime.conftest import Client

    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    phone = await server.connect(bob, resume={})
    await phone.request({"type": "join", "room": "general"})
    sender = await server.connect(ada, resume={})
    for i in range(3):
        await sender.send_text(room, f"m{i}")
    await phone.wait_messages(room, 4)
    # The phone acknowledges delivery of everything: the account's cursor is now 4.
    await phone.request({"type": "delivered", "conversation_id": room, "seq": 4})
    await server.services.messaging.flush_receipts()
    # A laptop that holds only the join notice connects, and is slow to resume.
    ws = await websockets.connect(f"{server.ws_url}?resume=1&token={bob}")
    laptop = Client(ws)
    await laptop.next("hello")
    await asyncio.sleep(1.0)  # longer than the grace period
    assert laptop.messages == []
    await laptop.request({"type": "resume", "cursors": {room: 1}}, "resumed")
    got = await laptop.wait_messages(room, 3)
    assert [m["seq"] for m in got] == [2, 3, 4]
    for client in (phone, sender, laptop):
        await client.close()


async def test_bursts_reach_sockets_in_order_without_reading_the_store(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palaver.gateway import hub

    monkeypatch.setattr(hub, "SWEEP_SECONDS", 3600.0)
    relaxed = settings.model_copy(
        update={"rate_messages_burst": 10_000, "rate_messages_per_second": 10_000.0}
    )
    async for server in start_server(relaxed):
        _, ada = await server.user("ada")
        _, bob = await server.user("bob")
        _, cat = await server.user("cat")
        room = await server.room(ada, "general")
        for token in (bob, cat):
            await server.rest(token, "POST", f"/api/conversations/{room}/join")
        senders = [await server.connect(t, resume={}) for t in (ada, bob)]
        reader = await server.connect(cat, resume={})
        store = server.services.store
        # First let every socket catch up on the join notices (that reads the store).
        joined = (await store.get_conversation(room)).last_seq  # type: ignore[union-attr]
        for client in (*senders, reader):
            async with asyncio.timeout(5):
                while not client.messages or client.messages[-1]["seq"] < joined:
                    await asyncio.sleep(0.01)
        reads = 0
        original = store.get_messages

        async def counting(*args, _original=original, **kwargs):  # type: ignore[no-untyped-def]
            nonlocal reads
            reads += 1
            return await _original(*args, **kwargs)

        store.get_messages = counting  # type: ignore[method-assign]
        # Many sends in flight at once from two sockets: group commits carry several
        # messages of the same conversation.
        await asyncio.gather(*(s.send_text(room, f"{i}") for i in range(100) for s in senders))
        last = (await store.get_conversation(room)).last_seq  # type: ignore[union-attr]
        got = await reader.wait_messages(room, 200)
        store.get_messages = original  # type: ignore[method-assign]
        assert [m["seq"] for m in got] == list(range(got[0]["seq"], last + 1))
        assert reads == 0, "wake-ups arrived out of order and sockets read the store"
        for client in (*senders, reader):
            await client.close()


async def test_a_cursor_past_the_last_message_is_lowered_to_it(server: Server) -> None:
    """A client claiming more than was ever stored (say, after the database was restored
    from an older backup) is told the cursor in effect, and gets the new messages."""
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    await server.rest(bob, "POST", f"/api/conversations/{room}/join")
    last = (await server.services.store.get_conversation(room)).last_seq  # type: ignore[union-attr]
    reader = await server.connect(bob, resume={room: 1000})
    resumed = await reader.request({"type": "resume", "cursors": {room: 1000}}, "resumed")
    assert resumed["cursors"] == {str(room): last}
    sender = await server.connect(ada, resume={})
    for i in range(3):
        await sender.send_text(room, f"after {i}")
    got = await reader.wait_messages(room, 3)
    assert seqs(got) == [last + 1, last + 2, last + 3]
    await sender.close()
    await reader.close()


async def test_a_socket_hears_of_a_new_conversation_before_its_messages(server: Server) -> None:
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    reader = await server.connect(bob, resume={})
    sender = await server.connect(ada, resume={})

    async def frames_of(conversation_id: int, count: int) -> list[str]:
        kinds: list[str] = []
        async with asyncio.timeout(5):
            while len(kinds) < count:
                frame = await reader.frames.get()
                if frame["type"] == "joined":
                    if frame["conversation"]["id"] == conversation_id:
                        kinds.append("joined")
                elif frame.get("conversation_id") == conversation_id:
                    kinds.append(frame["type"])
        return kinds

    # A direct conversation made by its first message.
    ack = await sender.request({"type": "send", "to": "bob", "content": "hi"}, "ack")
    assert await frames_of(ack["conversation_id"], 2) == ["joined", "message"]
    # Joining over REST: the notice of the join comes after the join itself.
    await server.rest(bob, "POST", f"/api/conversations/{room}/join")
    assert await frames_of(room, 2) == ["joined", "message"]
    await sender.close()
    await reader.close()


async def test_a_join_before_the_resume_forgets_no_message_owed_elsewhere(
    settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A message that reached a socket still waiting for its resume is noted; joining
    another conversation meanwhile must not drop that note."""
    import websockets

    from palaver.gateway import hub
    from tests.realtime.conftest import Client

    monkeypatch.setattr(hub, "SWEEP_SECONDS", 3600.0)  # nothing else would deliver it
    async for server in start_server(settings):
        _, ada = await server.user("ada")
        _, bob = await server.user("bob")
        room = await server.room(ada, "general")
        other = await server.room(ada, "other")
        await server.rest(bob, "POST", f"/api/conversations/{room}/join")
        joined = (await server.services.store.get_conversation(room)).last_seq  # type: ignore[union-attr]
        ws = await websockets.connect(f"{server.ws_url}?resume=1&token={bob}")
        laptop = Client(ws)
        await laptop.next("hello")
        sender = await server.connect(ada, resume={})
        sent = await sender.send_text(room, "while not resumed")
        await asyncio.sleep(0.2)  # the wake-up reaches the laptop's socket
        await server.rest(bob, "POST", f"/api/conversations/{other}/join")
        await laptop.next("joined")
        await laptop.request({"type": "resume", "cursors": {room: joined}}, "resumed")
        got = await laptop.wait_messages(room, 1)
        assert [m["seq"] for m in got] == [sent["seq"]]
        for client in (sender, laptop):
            await client.close()


async def test_a_resume_during_a_catch_up_gets_nothing_twice(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up waits for each sender's profile; a resume with a later cursor landing
    meanwhile must not see messages it already has again (nor its cursor moved back)."""
    _, ada = await server.user("ada")
    room = await server.room(ada, "general")
    sender = await server.connect(ada, resume={})
    for i in range(5):
        await sender.send_text(room, f"m{i}")
    users = server.services.users
    real_get = users.get
    slow = asyncio.Event()

    async def slow_get(user_id: int) -> Any:
        if not slow.is_set():
            slow.set()
            await asyncio.sleep(0.3)
        return await real_get(user_id)

    monkeypatch.setattr(users, "get", slow_get)
    client = await server.connect(ada, resume={room: 0})
    await asyncio.wait_for(slow.wait(), 5)
    # The client says it already has everything, while the catch-up waits.
    await client.request({"type": "resume", "cursors": {room: 5}}, "resumed")
    await asyncio.sleep(0.6)
    await sender.send_text(room, "m5")
    await client.wait_messages(room, 1)
    await asyncio.sleep(0.2)
    assert [m["seq"] for m in client.messages if m["conversation_id"] == room] == [6]
    await asyncio.gather(sender.close(), client.close())


async def test_a_rejoin_during_an_old_catch_up_still_says_joined_first(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A catch-up from before a leave is still waiting when the user is back in the
    conversation: it must neither write nor lift the new join's hold, so the socket
    gets ``joined`` before any message of the conversation."""
    from palaver.core.models import Role

    ada_id, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    room = await server.room(ada, "general")
    await server.join(bob, room)
    sender = await server.connect(ada, resume={})
    for i in range(5):
        await sender.send_text(room, f"m{i}")
    services = server.services
    store, users = services.store, services.users
    real_get, real_count = users.get, store.count_members
    looking_up = asyncio.Event()
    greeting = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_get(user_id: int) -> Any:
        if user_id == ada_id and not looking_up.is_set():  # the catch-up's first
            looking_up.set()
            await asyncio.sleep(1.5)
        return await real_get(user_id)

    async def slow_count(conversation_id: int) -> int:
        greeting.set()
        await go_on.wait()
        return await real_count(conversation_id)

    monkeypatch.setattr(users, "get", slow_get)
    laptop = await server.connect(bob, resume={room: 0})
    await asyncio.wait_for(looking_up.wait(), 5)
    # Meanwhile: Bob leaves and comes back (as another node would tell this one).
    assert await store.remove_member(room, bob_id)
    await services.conversations._tell_user(bob_id, "left", room, None)
    await laptop.next("left")
    monkeypatch.setattr(store, "count_members", slow_count)
    member = await store.add_member(room, bob_id, Role.MEMBER, now_ms())
    assert member is not None
    await services.conversations._tell_user(bob_id, "joined", room, member.read_seq)
    await asyncio.wait_for(greeting.wait(), 5)
    await asyncio.sleep(1.6)  # the old catch-up's lookup is over
    await sender.send_text(room, "live")
    await asyncio.sleep(0.2)
    go_on.set()
    order: list[str] = []
    async with asyncio.timeout(5):
        while "joined" not in order or "live" not in order:
            frame = await laptop.frames.get()
            if frame["type"] == "joined":
                order.append("joined")
            elif frame["type"] == "message":
                order.append(frame["content"])
    assert order == ["joined", "live"], order
    await asyncio.gather(sender.close(), laptop.close())
