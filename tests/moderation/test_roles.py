"""Roles, kick, ban and mute over REST and the socket, with their authorization."""

from __future__ import annotations

import asyncio

from palaver.core.models import now_ms
from palaver.core.moderation import Ban
from tests.moderation.conftest import ON_PACKAGE_LOOP, Mod
from tests.realtime.conftest import PASSWORD

pytestmark = ON_PACKAGE_LOOP


async def test_kick_needs_a_moderator_and_the_kicked_socket_stops_at_once(mod: Mod) -> None:
    owner, bob, carol, dave = [await mod.person(p) for p in ("own", "bob", "car", "dav")]
    cid = await mod.room(owner, bob, carol)
    kick = f"/api/conversations/{cid}/members/{carol.id}/kick"
    # A member cannot kick; an outsider cannot even see the room.
    await mod.refused(bob, "POST", kick, "FORBIDDEN")
    await mod.refused(dave, "POST", kick, "NOT_FOUND")
    # Admins are made by the owner, not by other members.
    await mod.refused(
        bob,
        "PUT",
        f"/api/conversations/{cid}/members/{bob.id}/role",
        "FORBIDDEN",
        json={"role": "admin"},
    )
    promoted = await mod.ok(
        owner, "PUT", f"/api/conversations/{cid}/members/{bob.id}/role", json={"role": "admin"}
    )
    assert promoted["role"] == "admin"
    # An admin cannot act on the owner.
    await mod.refused(bob, "POST", f"/api/conversations/{cid}/members/{owner.id}/kick", "FORBIDDEN")
    carol_ws = await mod.connect(carol)
    owner_ws = await mod.connect(owner)
    await mod.ok(bob, "POST", kick)
    left = await carol_ws.next("left")
    assert left["conversation_id"] == cid
    # Gone from the room: the socket refuses, history is hidden, the notice is there.
    refused = await carol_ws.send_text(cid, "still here?")
    assert refused["code"] == "NOT_FOUND"
    await mod.refused(carol, "GET", f"/api/conversations/{cid}/messages", "NOT_FOUND")
    await owner_ws.send_text(cid, "after the kick")
    await owner_ws.wait_messages(cid, 1)
    history = await mod.ok(owner, "GET", f"/api/conversations/{cid}/messages")
    assert any(
        m["kind"] == "system" and f"removed {carol.name}" in m["content"]
        for m in history["messages"]
    )
    assert not any(m["content"] == "after the kick" for m in carol_ws.messages)
    # A kick is not a ban: the public room takes her back.
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/join")
    await carol_ws.close()
    await owner_ws.close()


async def test_admins_cannot_act_on_admins_unless_server_admins(mod: Mod) -> None:
    owner = await mod.person("own")
    a1 = await mod.person("a1")
    a2 = await mod.person("a2")
    staff = await mod.person("staff", admin=True)
    cid = await mod.room(owner, a1, a2, staff)
    for who in (a1, a2, staff):
        await mod.ok(
            owner,
            "PUT",
            f"/api/conversations/{cid}/members/{who.id}/role",
            json={"role": "admin"},
        )
    await mod.refused(
        a1, "PUT", f"/api/conversations/{cid}/members/{a2.id}/mute", "FORBIDDEN", json={}
    )
    await mod.refused(
        a1, "POST", f"/api/conversations/{cid}/bans", "FORBIDDEN", json={"user_id": a2.id}
    )
    # A server administrator may; nobody touches the owner.
    await mod.ok(staff, "PUT", f"/api/conversations/{cid}/members/{a2.id}/mute", json={})
    await mod.refused(
        staff, "POST", f"/api/conversations/{cid}/bans", "FORBIDDEN", json={"user_id": owner.id}
    )
    # Ownership moves only by the owner's hand.
    await mod.refused(
        a1,
        "PUT",
        f"/api/conversations/{cid}/members/{a1.id}/role",
        "FORBIDDEN",
        json={"role": "owner"},
    )
    await mod.ok(
        owner, "PUT", f"/api/conversations/{cid}/members/{a1.id}/role", json={"role": "owner"}
    )
    members = {
        m["user_id"]: m for m in await mod.ok(a1, "GET", f"/api/conversations/{cid}/members")
    }
    assert members[a1.id]["role"] == "owner"
    assert members[owner.id]["role"] == "admin"
    assert members[a2.id]["muted"] is True
    audit = await mod.ok(
        staff, "GET", "/api/admin/audit", params={"action": "member.*", "target": f"{cid}:{a1.id}"}
    )
    assert [e["details"]["role"] for e in audit["events"]] == ["owner", "admin"]


async def test_ban_keeps_out_until_it_ends_or_is_lifted(mod: Mod) -> None:
    owner = await mod.person("own")
    carol = await mod.person("car")
    cid = await mod.room(owner, carol)
    carol_ws = await mod.connect(carol)
    await mod.refused(
        carol, "POST", f"/api/conversations/{cid}/bans", "FORBIDDEN", json={"user_id": owner.id}
    )
    ban = await mod.ok(
        owner,
        "POST",
        f"/api/conversations/{cid}/bans",
        json={"user_id": carol.id, "duration": 3600, "reason": "spam"},
    )
    assert ban["until"] > now_ms()
    assert (await carol_ws.next("left"))["conversation_id"] == cid
    # No way back in while it lasts: join, being added, an invite.
    error = await mod.refused(carol, "POST", f"/api/conversations/{cid}/join", "BANNED")
    assert error["until"] == ban["until"]
    joined = await carol_ws.request({"type": "join", "room": cid})
    assert joined["code"] == "BANNED"
    await mod.refused(
        owner, "POST", f"/api/conversations/{cid}/members", "BANNED", json={"user_id": carol.id}
    )
    invite = await mod.ok(owner, "POST", f"/api/conversations/{cid}/invites", json={})
    await mod.refused(carol, "POST", f"/api/invites/{invite['code']}/join", "BANNED")
    listed = await mod.ok(owner, "GET", f"/api/conversations/{cid}/bans")
    assert [b["user_id"] for b in listed] == [carol.id]
    # A ban whose time is up no longer counts.
    past = Ban(cid, carol.id, until=now_ms() - 1, banned_by=owner.id, at=now_ms() - 10)
    await mod.services.store.ban_member(past)
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/join")
    # Banned for ever over the socket, then lifted.
    owner_ws = await mod.connect(owner)
    got = await owner_ws.request({"type": "ban", "conversation_id": cid, "user_id": carol.id})
    assert got["type"] == "result"
    assert got["ban"]["until"] is None
    await mod.refused(carol, "POST", f"/api/conversations/{cid}/join", "BANNED")
    await mod.ok(owner, "DELETE", f"/api/conversations/{cid}/bans/{carol.id}")
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/join")
    await carol_ws.close()
    await owner_ws.close()


async def test_a_muted_member_reads_but_cannot_send(mod: Mod) -> None:
    owner = await mod.person("own")
    carol = await mod.person("car")
    cid = await mod.room(owner, carol)
    carol_ws = await mod.connect(carol)
    owner_ws = await mod.connect(owner)
    await mod.refused(
        carol, "PUT", f"/api/conversations/{cid}/members/{owner.id}/mute", "FORBIDDEN", json={}
    )
    got = await owner_ws.request(
        {"type": "mute", "conversation_id": cid, "user_id": carol.id, "duration": 600}
    )
    assert got["member"]["muted"] is True
    update = await carol_ws.next("member_updated")
    assert update["user_id"] == carol.id
    assert update["muted"] is True
    refused = await carol_ws.send_text(cid, "hello?")
    assert refused["code"] == "MUTED"
    assert refused["muted_until"] == got["member"]["muted_until"]
    error = await mod.refused(
        carol, "POST", f"/api/conversations/{cid}/messages", "MUTED", json={"content": "x"}
    )
    assert error["message"]
    await owner_ws.send_text(cid, "you can still read")
    ack = await owner_ws.send_text(cid, "and more")
    got_all = await carol_ws.wait_messages(cid, ack["seq"])
    assert "you can still read" in [m["content"] for m in got_all]
    await mod.ok(owner, "DELETE", f"/api/conversations/{cid}/members/{carol.id}/mute")
    assert (await carol_ws.send_text(cid, "back"))["type"] == "ack"
    # A mute whose time is up is not enforced (the send path reads memory only).
    await mod.services.store.set_member_mute(cid, carol.id, now_ms() - 1)
    mod.services.moderation.state.mutes[(cid, carol.id)] = now_ms() - 1
    assert (await carol_ws.send_text(cid, "still fine"))["type"] == "ack"
    await carol_ws.close()
    await owner_ws.close()


async def test_moderation_frames_answer_like_rest(mod: Mod) -> None:
    owner = await mod.person("own")
    bob = await mod.person("bob")
    cid = await mod.room(owner, bob)
    bob_ws = await mod.connect(bob)
    for frame in (
        {"type": "kick", "conversation_id": cid, "user_id": owner.id},
        {"type": "mute", "conversation_id": cid, "user_id": owner.id},
        {"type": "set_role", "conversation_id": cid, "user_id": bob.id, "role": "admin"},
        {"type": "create_invite", "conversation_id": cid},
    ):
        assert (await bob_ws.request(frame))["code"] == "FORBIDDEN", frame
    bad = await bob_ws.request({"type": "kick", "conversation_id": cid})
    assert bad["code"] == "INVALID_FORMAT"
    assert bad["field"] == "user_id"
    outsider = await mod.person("out")
    out_ws = await mod.connect(outsider)
    hidden = await out_ws.request({"type": "kick", "conversation_id": cid, "user_id": bob.id})
    assert hidden["code"] == "NOT_FOUND"
    await asyncio.gather(bob_ws.close(), out_ws.close())


async def test_an_owner_who_leaves_hands_ownership_on(mod: Mod) -> None:
    owner, ann, bob, cal = [await mod.person(p) for p in ("own", "ann", "bob", "cal")]
    staff = await mod.person("staff", admin=True)
    cid = await mod.room(owner, ann, bob, cal)
    base = f"/api/conversations/{cid}"

    async def roles() -> dict[int, str]:
        listed = await mod.ok(ann, "GET", f"{base}/members")
        return {m["user_id"]: m["role"] for m in listed}

    # Cal is made admin before bob, but bob has been in the room longer.
    for admin in (cal, bob):
        await mod.ok(owner, "PUT", f"{base}/members/{admin.id}/role", json={"role": "admin"})
    ann_ws = await mod.connect(ann)
    assert (await mod.call(owner, "POST", f"{base}/leave")).status_code == 204
    update = await ann_ws.next("member_updated")
    assert (update["conversation_id"], update["user_id"], update["role"]) == (cid, bob.id, "owner")
    assert await roles() == {ann.id: "member", bob.id: "owner", cal.id: "admin"}
    history = await mod.ok(bob, "GET", f"{base}/messages")
    assert [m["content"] for m in history["messages"]][-2:] == [
        f"{owner.name} left",
        f"{bob.name} is now the owner",
    ]
    audit = await mod.ok(
        staff, "GET", "/api/admin/audit", params={"action": "member.*", "target": f"{cid}:{bob.id}"}
    )
    assert audit["events"][0]["actor_id"] == owner.id
    assert audit["events"][0]["details"] == {"role": "owner", "cause": "owner_left"}
    # The heir owns it in full; the old owner comes back as a member.
    await mod.ok(bob, "PATCH", base, json={"topic": "still owned"})
    await mod.ok(owner, "POST", f"{base}/join")
    assert (await roles())[owner.id] == "member"
    # Then the other admin; with none left, the member who has been there longest.
    await mod.ok(bob, "POST", f"{base}/leave")
    assert (await roles())[cal.id] == "owner"
    await mod.ok(cal, "POST", f"{base}/leave")
    assert await roles() == {ann.id: "owner", owner.id: "member"}
    await mod.ok(owner, "POST", f"{base}/leave")
    assert await roles() == {ann.id: "owner"}
    # The last member leaves an empty room; whoever comes back first owns it.
    await mod.ok(ann, "POST", f"{base}/leave")
    assert (await mod.ok(staff, "POST", f"{base}/join"))["conversation"]["member_count"] == 1
    listed = await mod.ok(staff, "GET", f"{base}/members")
    assert {m["user_id"]: m["role"] for m in listed} == {staff.id: "owner"}
    history = await mod.ok(staff, "GET", f"{base}/messages")
    assert [m["content"] for m in history["messages"]][-2:] == [
        f"{staff.name} joined",
        f"{staff.name} is now the owner",
    ]
    await mod.ok(ann, "POST", f"{base}/join")
    assert await roles() == {staff.id: "owner", ann.id: "member"}
    await ann_ws.close()


async def test_a_deleted_owner_hands_on_and_every_conversation_is_told(mod: Mod) -> None:
    owner, ann, bob = [await mod.person(p) for p in ("own", "ann", "bob")]
    staff = await mod.person("staff", admin=True)
    room = await mod.room(owner, ann, bob)
    await mod.ok(
        owner, "PUT", f"/api/conversations/{room}/members/{bob.id}/role", json={"role": "admin"}
    )
    made = await mod.ok(
        ann,
        "POST",
        "/api/conversations",
        json={"type": "group", "name": "g", "members": [owner.id]},
    )
    group = int(made["id"])
    direct = await mod.ok(
        owner, "POST", "/api/conversations", json={"type": "direct", "user_id": ann.id}
    )
    dm = int(direct["id"])
    ann_ws = await mod.connect(ann)
    gone = await mod.call(owner, "DELETE", "/api/auth/me", json={"password": PASSWORD})
    assert gone.status_code == 204, gone.text
    update = await ann_ws.next("member_updated")
    assert (update["conversation_id"], update["user_id"], update["role"]) == (room, bob.id, "owner")

    async def tail(cid: int, n: int) -> list[str]:
        history = await mod.ok(ann, "GET", f"/api/conversations/{cid}/messages")
        return [m["content"] for m in history["messages"]][-n:]

    assert await tail(room, 2) == ["Deleted user left", f"{bob.name} is now the owner"]
    assert await tail(group, 1) == ["Deleted user left"]
    # A direct conversation gets no notice: its history just names a deleted user.
    assert "Deleted user left" not in await tail(dm, 5)
    listed = await mod.ok(ann, "GET", f"/api/conversations/{room}/members")
    assert {m["user_id"]: m["role"] for m in listed} == {ann.id: "member", bob.id: "owner"}
    audit = await mod.ok(
        staff,
        "GET",
        "/api/admin/audit",
        params={"action": "member.*", "target": f"{room}:{bob.id}"},
    )
    assert audit["events"][0]["details"] == {"role": "owner", "cause": "owner_deleted"}
    await ann_ws.close()


async def test_a_group_owner_leaving_over_the_socket_hands_it_on(mod: Mod) -> None:
    owner, ann, bob = [await mod.person(p) for p in ("own", "ann", "bob")]
    made = await mod.ok(
        owner,
        "POST",
        "/api/conversations",
        json={"type": "group", "name": "g", "members": [ann.id, bob.id]},
    )
    gid = made["id"]
    owner_ws, bob_ws = await mod.connect(owner), await mod.connect(bob)
    # Ann and bob joined at the same moment: the earlier account inherits.
    assert (await owner_ws.request({"type": "leave", "conversation_id": gid}))["ok"] is True
    assert (await owner_ws.next("left"))["conversation_id"] == gid
    update = await bob_ws.next("member_updated")
    assert (update["user_id"], update["role"]) == (ann.id, "owner")
    listed = await mod.ok(bob, "GET", f"/api/conversations/{gid}/members")
    assert {m["user_id"]: m["role"] for m in listed} == {ann.id: "owner", bob.id: "member"}
    await mod.ok(ann, "POST", f"/api/conversations/{gid}/members", json={"user_id": owner.id})
    for ws in (owner_ws, bob_ws):
        await ws.close()
