"""Room and group names and topics: stored at creation (REST and socket), changed by
owners and admins with PATCH, told to members' sockets; join answers count members."""

from __future__ import annotations

from palaver.http.asyncapi import SERVER_FRAMES
from tests.realtime.conftest import Server


async def test_topic_is_stored_at_creation_and_read_back(server: Server) -> None:
    _, ada = await server.user("ada")
    created = await server.rest(
        ada, "POST", "/api/conversations", json={"type": "room", "name": "general", "topic": "all"}
    )
    assert created.status_code == 201, created.text
    assert created.json()["topic"] == "all"
    cid = created.json()["id"]
    got = await server.rest(ada, "GET", f"/api/conversations/{cid}")
    assert got.json()["topic"] == "all"
    [listed] = (await server.rest(ada, "GET", "/api/rooms")).json()
    assert listed["topic"] == "all"
    [mine] = (await server.rest(ada, "GET", "/api/conversations")).json()
    assert mine["topic"] == "all"
    group = await server.rest(
        ada, "POST", "/api/conversations", json={"type": "group", "name": "g", "topic": "plans"}
    )
    assert group.json()["topic"] == "plans"
    client = await server.connect(ada)
    try:
        made = await client.request({"type": "create_room", "name": "random", "topic": "misc"})
        assert made["conversation"]["topic"] == "misc"
        stored = await server.services.store.get_conversation(made["conversation"]["id"])
        assert stored is not None
        assert stored.topic == "misc"
    finally:
        await client.close()


async def test_owner_renames_and_sets_topic_members_are_told(server: Server) -> None:
    _, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    _, eve = await server.user("eve")
    cid = await server.room(ada, "general")
    joined = await server.rest(bob, "POST", f"/api/conversations/{cid}/join")
    assert joined.json()["conversation"]["member_count"] == 2
    watcher = await server.connect(bob, resume={})
    try:
        changed = await server.rest(
            ada, "PATCH", f"/api/conversations/{cid}", json={"name": "lobby", "topic": "hi"}
        )
        assert changed.status_code == 200, changed.text
        assert (changed.json()["name"], changed.json()["topic"]) == ("lobby", "hi")
        assert changed.json()["member_count"] == 2
        frame = await watcher.next("conversation_updated")
        assert frame["conversation"]["id"] == cid
        assert (frame["conversation"]["name"], frame["conversation"]["topic"]) == ("lobby", "hi")
        # "bob joined", then the two notices.
        notices = await watcher.wait_messages(cid, 3)
        assert [(m["kind"], m["content"]) for m in notices[1:]] == [
            ("system", "ada renamed the room to lobby"),
            ("system", "ada set the topic: hi"),
        ]
        # The room is now found by its new name only.
        assert (await server.services.store.get_room_by_name("LOBBY")) is not None
        assert (await server.services.store.get_room_by_name("general")) is None
        # Absent topic keeps it; null clears it.
        kept = await server.rest(ada, "PATCH", f"/api/conversations/{cid}", json={"name": "hall"})
        assert kept.json()["topic"] == "hi"
        cleared = await server.rest(ada, "PATCH", f"/api/conversations/{cid}", json={"topic": None})
        assert cleared.json()["topic"] is None
    finally:
        await watcher.close()

    member = await server.rest(bob, "PATCH", f"/api/conversations/{cid}", json={"topic": "x"})
    assert (member.status_code, member.json()["error"]["code"]) == (403, "FORBIDDEN")
    outsider = await server.rest(eve, "PATCH", f"/api/conversations/{cid}", json={"topic": "x"})
    missing = await server.rest(eve, "PATCH", "/api/conversations/999999", json={"topic": "x"})
    assert outsider.status_code == missing.status_code == 404
    assert outsider.json() == missing.json()
    bad = await server.rest(ada, "PATCH", f"/api/conversations/{cid}", json={"name": "  "})
    assert (bad.status_code, bad.json()["error"]["field"]) == (422, "name")
    control = await server.rest(ada, "PATCH", f"/api/conversations/{cid}", json={"topic": "a\x00"})
    assert (control.status_code, control.json()["error"]["field"]) == (422, "topic")
    await server.room(ada, "taken")
    clash = await server.rest(ada, "PATCH", f"/api/conversations/{cid}", json={"name": "Taken"})
    assert (clash.status_code, clash.json()["error"]["code"]) == (409, "CONFLICT")
    # Admins may, once promoted.
    role = await server.rest(
        ada, "PUT", f"/api/conversations/{cid}/members/{bob_id}/role", json={"role": "admin"}
    )
    assert role.status_code == 200, role.text
    promoted = await server.rest(bob, "PATCH", f"/api/conversations/{cid}", json={"topic": "y"})
    assert promoted.status_code == 200, promoted.text
    audit = await server.services.store.list_audit(action="conversation.updated")
    assert len(audit) == 4


async def test_conversation_updated_frames_count_the_members(server: Server) -> None:
    _, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    carol_id, _ = await server.user("carol")
    created = await server.rest(
        ada,
        "POST",
        "/api/conversations",
        json={"type": "group", "name": "trio", "members": [bob_id, carol_id]},
    )
    assert created.status_code == 201, created.text
    gid = created.json()["id"]
    watcher = await server.connect(bob, resume={})
    try:
        renamed = await server.rest(ada, "PATCH", f"/api/conversations/{gid}", json={"name": "t"})
        assert renamed.status_code == 200, renamed.text
        frame = await watcher.next("conversation_updated")
        assert (frame["conversation"]["name"], frame["conversation"]["member_count"]) == ("t", 3)
        # The AsyncAPI document describes the object as sent.
        described = SERVER_FRAMES["conversation_updated"][1]["conversation"]
        assert set(frame["conversation"]) == set(described["properties"])
        assert described["properties"]["member_count"]["type"] == "integer"
        assert "member_count" in described["required"]
        # The count is the members' as they are when the change is told.
        removed = await server.rest(ada, "DELETE", f"/api/conversations/{gid}/members/{carol_id}")
        assert removed.status_code == 204, removed.text
        topic = await server.rest(ada, "PATCH", f"/api/conversations/{gid}", json={"topic": "x"})
        assert topic.status_code == 200, topic.text
        frame = await watcher.next("conversation_updated")
        assert (frame["conversation"]["topic"], frame["conversation"]["member_count"]) == ("x", 2)
    finally:
        await watcher.close()


async def test_socket_join_answer_counts_members(server: Server) -> None:
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    await server.room(ada, "general")
    client = await server.connect(bob)
    try:
        answer = await client.request({"type": "join", "room": "general"})
        assert answer["conversation"]["member_count"] == 2
    finally:
        await client.close()
