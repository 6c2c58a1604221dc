"""Conversations over REST: rooms, groups, directs, membership, the seed-002 room view."""

from __future__ import annotations

import asyncio
from pathlib import Path

from palaver.services.retention import DAY_MS
from tests.api.conftest import Api, open_api
from tests.isolated import isolated_settings


async def setup_users(api: Api, *names: str) -> dict[str, dict[str, object]]:
    return {name: await api.register(name, email=f"{name}@example.com") for name in names}


async def test_rooms_create_list_join_leave_with_notices(api: Api) -> None:
    users = await setup_users(api, "ada", "bob")
    ada, bob = api.bearer(users["ada"]["token"]), api.bearer(users["bob"]["token"])
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "General"}, headers=ada
    )
    assert room.status_code == 201
    rid = room.json()["id"]
    clash = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "general"}, headers=bob
    )
    assert clash.status_code == 409
    assert clash.json()["error"]["field"] == "name"
    rooms = await api.http.get("/api/rooms", headers=bob)
    assert [(r["name"], r["member_count"]) for r in rooms.json()] == [("General", 1)]
    joined = await api.http.post(f"/api/conversations/{rid}/join", headers=bob)
    assert joined.json()["joined"] is True
    again = await api.http.post(f"/api/conversations/{rid}/join", headers=bob)
    assert again.json()["joined"] is False
    rooms = await api.http.get("/api/rooms", headers=bob)
    assert rooms.json()[0]["member_count"] == 2
    sent = await api.http.post(
        f"/api/conversations/{rid}/messages", json={"content": "hi all"}, headers=bob
    )
    assert sent.status_code == 201
    left = await api.http.post(f"/api/conversations/{rid}/leave", headers=bob)
    assert left.status_code == 204
    history = await api.http.get(f"/api/conversations/{rid}/messages", headers=ada)
    assert [(m["kind"], m["content"]) for m in history.json()["messages"]] == [
        ("system", "bob joined"),
        ("text", "hi all"),
        ("system", "bob left"),
    ]
    # Gone members read nothing more.
    gone = await api.http.get(f"/api/conversations/{rid}/messages", headers=bob)
    assert gone.status_code == 404


async def test_seed_room_messages_shape(api: Api) -> None:
    users = await setup_users(api, "ada")
    ada = api.bearer(users["ada"]["token"])
    rid = (
        await api.http.post(
            "/api/conversations", json={"type": "room", "name": "lobby"}, headers=ada
        )
    ).json()["id"]
    for i in range(3):
        await api.http.post(
            f"/api/conversations/{rid}/messages", json={"content": f"m{i}"}, headers=ada
        )
    listing = await api.http.get("/api/messages/lobby", params={"limit": 2}, headers=ada)
    body = listing.json()
    assert [m["content"] for m in body] == ["m1", "m2"]
    first = body[0]
    assert {"id", "room", "senderEmail", "content", "createdAt", "seq"} <= set(first)
    assert first["room"] == "lobby"
    assert first["senderEmail"] == "ada@example.com"
    assert first["createdAt"].endswith("Z")
    missing = await api.http.get("/api/messages/nowhere", headers=ada)
    assert missing.status_code == 404


async def test_direct_conversation_is_created_once_by_id_or_username(api: Api) -> None:
    users = await setup_users(api, "ada", "bob")
    ada = api.bearer(users["ada"]["token"])
    bob_id = users["bob"]["user"]["id"]  # type: ignore[index]
    first = await api.http.post(
        "/api/conversations", json={"type": "direct", "user_id": bob_id}, headers=ada
    )
    assert first.status_code == 201
    assert first.json()["name"] == "bob"
    second = await api.http.post(
        "/api/conversations", json={"type": "direct", "user_id": "bob"}, headers=ada
    )
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    myself = await api.http.post(
        "/api/conversations", json={"type": "direct", "user_id": "ada"}, headers=ada
    )
    assert myself.json()["error"]["code"] == "SELF_MESSAGE"
    cannot_leave = await api.http.post(
        f"/api/conversations/{first.json()['id']}/leave", headers=ada
    )
    assert cannot_leave.status_code == 403


async def test_groups_owner_and_admins_manage_members(api: Api) -> None:
    users = await setup_users(api, "ada", "bob", "cat", "dan")
    ada, bob = api.bearer(users["ada"]["token"]), api.bearer(users["bob"]["token"])
    cat_id = users["cat"]["user"]["id"]  # type: ignore[index]
    group = await api.http.post(
        "/api/conversations",
        json={"type": "group", "name": "Project", "members": ["bob", cat_id]},
        headers=ada,
    )
    assert group.status_code == 201
    gid = group.json()["id"]
    assert group.json()["member_count"] == 3
    members = await api.http.get(f"/api/conversations/{gid}/members", headers=bob)
    roles = {m["username"]: m["role"] for m in members.json()}
    assert roles == {"ada": "owner", "bob": "member", "cat": "member"}
    refused = await api.http.post(
        f"/api/conversations/{gid}/members", json={"user_id": "dan"}, headers=bob
    )
    assert refused.status_code == 403
    added = await api.http.post(
        f"/api/conversations/{gid}/members", json={"user_id": "dan"}, headers=ada
    )
    assert added.status_code == 201
    kick_owner = await api.http.delete(
        f"/api/conversations/{gid}/members/{users['ada']['user']['id']}",  # type: ignore[index]
        headers=bob,
    )
    assert kick_owner.status_code == 403
    removed = await api.http.delete(f"/api/conversations/{gid}/members/{cat_id}", headers=ada)
    assert removed.status_code == 204
    cat = api.bearer(users["cat"]["token"])
    assert (await api.http.get(f"/api/conversations/{gid}", headers=cat)).status_code == 404
    listing = await api.http.get("/api/conversations", headers=ada)
    assert listing.json()[0]["last_message"]["content"] == "ada removed cat"
    # Outsiders cannot see that the group exists.
    outsider = await api.http.get(f"/api/conversations/{gid}/members", headers=cat)
    nothing = await api.http.get("/api/conversations/999999/members", headers=cat)
    assert outsider.status_code == nothing.status_code == 404


async def test_conversation_list_sorted_by_activity_with_unread(api: Api) -> None:
    users = await setup_users(api, "ada", "bob")
    ada, bob = api.bearer(users["ada"]["token"]), api.bearer(users["bob"]["token"])
    first = await api.http.post(
        "/api/conversations", json={"type": "direct", "user_id": "bob"}, headers=ada
    )
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "r"}, headers=ada
    )
    await api.http.post(f"/api/conversations/{room.json()['id']}/join", headers=bob)
    await api.http.post(
        f"/api/conversations/{first.json()['id']}/messages", json={"content": "x"}, headers=ada
    )
    listing = (await api.http.get("/api/conversations", headers=bob)).json()
    assert [c["id"] for c in listing] == [first.json()["id"], room.json()["id"]]
    assert listing[0]["unread"] == 1
    assert listing[0]["peer"]["username"] == "ada"
    read = await api.http.post(
        f"/api/conversations/{first.json()['id']}/read", json={"seq": 1}, headers=bob
    )
    assert read.status_code == 204
    await api.services.messaging.flush_receipts()
    listing = (await api.http.get("/api/conversations", headers=bob)).json()
    assert listing[0]["unread"] == 0


async def test_system_notices_are_the_last_message_but_never_unread(api: Api) -> None:
    users = await setup_users(api, "ada", "bob")
    ada, bob = api.bearer(users["ada"]["token"]), api.bearer(users["bob"]["token"])
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "r"}, headers=ada
    )
    cid = room.json()["id"]
    await api.http.post(f"/api/conversations/{cid}/join", headers=bob)
    [listed] = (await api.http.get("/api/conversations", headers=ada)).json()
    assert (listed["last_message"]["kind"], listed["last_message"]["content"]) == (
        "system",
        "bob joined",
    )
    assert (listed["unread"], listed["mentions"]) == (0, 0)
    await api.http.post(f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=bob)
    [listed] = (await api.http.get("/api/conversations", headers=ada)).json()
    assert (listed["last_message"]["kind"], listed["unread"]) == ("text", 1)


async def test_retention_removes_old_history_and_says_so(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path / "var",
        history_retention_days=7,
    )
    async for api in open_api(settings):
        users = await setup_users(api, "ada")
        ada = api.bearer(users["ada"]["token"])
        rid = (
            await api.http.post(
                "/api/conversations", json={"type": "room", "name": "r"}, headers=ada
            )
        ).json()["id"]
        for i in range(3):
            await api.http.post(
                f"/api/conversations/{rid}/messages", json={"content": f"m{i}"}, headers=ada
            )
        job = api.services.retention
        assert await job.purge_once() == 0  # nothing is a week old yet
        eight_days_later = (await api.services.store.get_messages(rid))[-1].created_at + 8 * DAY_MS
        assert await job.purge_once(now=eight_days_later) == 3
        page = await api.http.get(f"/api/conversations/{rid}/messages?after=0", headers=ada)
        assert page.json()["messages"] == []
        assert page.json()["gap"] == {"from_seq": 1, "to_seq": 3}
        sent = await api.http.post(
            f"/api/conversations/{rid}/messages", json={"content": "new"}, headers=ada
        )
        assert sent.json()["seq"] == 4


async def test_cursor_moves_survive_shutdown_during_a_flush(api: Api) -> None:
    users = await setup_users(api, "ada", "bob")
    ada = api.bearer(users["ada"]["token"])
    bob_id = users["bob"]["user"]["id"]  # type: ignore[index]
    dm = await api.http.post(
        "/api/conversations", json={"type": "direct", "user_id": bob_id}, headers=ada
    )
    cid = dm.json()["id"]
    for i in range(3):
        await api.http.post(
            f"/api/conversations/{cid}/messages", json={"content": f"{i}"}, headers=ada
        )
    store = api.services.store
    original = store.advance_cursors
    entered = asyncio.Event()

    async def slow(updates):  # type: ignore[no-untyped-def]
        entered.set()
        await asyncio.sleep(0.3)
        return await original(updates)

    store.advance_cursors = slow  # type: ignore[method-assign]
    await api.services.messaging.mark(bob_id, cid, 3, read=True)
    await entered.wait()  # the background flush has taken the move and is writing it
    await api.services.messaging.close()
    store.advance_cursors = original  # type: ignore[method-assign]
    member = await store.get_member(cid, bob_id)
    assert member is not None
    assert member.read_seq == 3
