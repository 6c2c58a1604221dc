"""Blocks, direct-message privacy, reports, notification settings, and the server
administrators' API (audit log, report queue, deactivation)."""

from __future__ import annotations

import httpx

from palaver.core.models import now_ms
from tests.moderation.conftest import ON_PACKAGE_LOOP, Mod

pytestmark = ON_PACKAGE_LOOP


async def test_a_blocked_user_cannot_write_nor_see_presence(mod: Mod) -> None:
    alice, bob, carol = [await mod.person(p) for p in ("ali", "bob", "car")]
    room = await mod.room(alice, bob, carol)
    direct = await mod.ok(
        bob, "POST", "/api/conversations", json={"type": "direct", "user_id": alice.id}
    )
    alice_ws = await mod.connect(alice)
    bob_ws = await mod.connect(bob)
    assert (await bob_ws.send_text(direct["id"], "hi"))["type"] == "ack"
    await mod.refused(alice, "POST", f"/api/users/{alice.id}/block", "VALIDATION_ERROR")
    await mod.ok(alice, "POST", f"/api/users/{bob.id}/block")
    assert [b["user_id"] for b in await mod.ok(alice, "GET", "/api/users/me/blocks")] == [bob.id]
    # Bob learns no more than "you cannot message this user".
    refused = await bob_ws.send_text(direct["id"], "hello?")
    assert (refused["code"], refused["message"]) == ("FORBIDDEN", "you cannot message this user")
    by_to = await bob_ws.request({"type": "send", "to": alice.id, "content": "x"}, "ack")
    assert by_to["code"] == "FORBIDDEN"
    await mod.refused(
        bob,
        "POST",
        f"/api/conversations/{direct['id']}/messages",
        "FORBIDDEN",
        json={"content": "x"},
    )
    # Alice's own sends there are refused too until she unblocks.
    assert (await alice_ws.send_text(direct["id"], "x"))["code"] == "FORBIDDEN"
    # Shared rooms go on; presence of alice is hidden from bob only.
    assert (await bob_ws.send_text(room, "in the room"))["type"] == "ack"
    online = await bob_ws.request({"type": "get_online_users"}, "online_users")
    assert alice.id not in [u["id"] for u in online["users"]]
    carol_ws = await mod.connect(carol)
    seen = await carol_ws.request({"type": "get_online_users"}, "online_users")
    assert alice.id in [u["id"] for u in seen["users"]]
    members = await mod.ok(bob, "GET", f"/api/conversations/{room}/members")
    assert {m["user_id"]: m["presence"] for m in members}[alice.id] == "offline"
    # A presence change of alice reaches carol's socket but not bob's.
    await alice_ws.request({"type": "presence", "status": "away"}, "result")
    while (away := await carol_ws.next("presence"))["user_id"] != alice.id:
        pass
    assert away["status"] == "away"
    await carol_ws.request({"type": "ping"}, "pong")
    await bob_ws.request({"type": "ping"}, "pong")
    # Frames of one publication reach local sockets in one pass, before the pong.
    assert not [
        f
        for f in list(bob_ws.frames._queue)  # type: ignore[attr-defined]
        if f["type"] == "presence" and f["user_id"] == alice.id and f["status"] == "away"
    ]
    # Nor can bob open a new direct conversation with her (a fresh pair).
    dave = await mod.person("dav")
    await mod.ok(dave, "POST", f"/api/users/{bob.id}/block")
    await mod.refused(
        bob, "POST", "/api/conversations", "FORBIDDEN", json={"type": "direct", "user_id": dave.id}
    )
    await mod.ok(alice, "DELETE", f"/api/users/{bob.id}/block")
    assert (await bob_ws.send_text(direct["id"], "friends again"))["type"] == "ack"
    for ws in (alice_ws, bob_ws, carol_ws):
        await ws.close()


async def test_direct_message_policy_contacts_only(mod: Mod) -> None:
    alice, carol, dave = [await mod.person(p) for p in ("ali", "car", "dav")]
    await mod.room(alice, carol)
    assert await mod.ok(alice, "GET", "/api/users/me/privacy") == {"dm_policy": "everyone"}
    await mod.ok(alice, "PUT", "/api/users/me/privacy", json={"dm_policy": "contacts"})
    await mod.refused(
        dave,
        "POST",
        "/api/conversations",
        "FORBIDDEN",
        json={"type": "direct", "user_id": alice.id},
    )
    dave_ws = await mod.connect(dave)
    first = await dave_ws.request({"type": "send", "to": alice.id, "content": "hi"}, "ack")
    assert first["code"] == "FORBIDDEN"
    # Someone who shares a room may.
    made = await mod.ok(
        carol, "POST", "/api/conversations", json={"type": "direct", "user_id": alice.id}
    )
    assert made["type"] == "direct"
    await mod.refused(
        alice, "PUT", "/api/users/me/privacy", "VALIDATION_ERROR", json={"dm_policy": "nobody"}
    )
    await dave_ws.close()


async def test_nobody_is_added_to_a_room_or_group_past_a_block(mod: Mod) -> None:
    ann, bea, cal, dan = [await mod.person(p) for p in ("ann", "bea", "cal", "dan")]
    await mod.ok(bea, "POST", f"/api/users/{ann.id}/block")
    bea_ws = await mod.connect(bea)

    def group(*members: int) -> dict[str, object]:
        return {"type": "group", "name": "g", "members": list(members)}

    # The whole request is refused, naming bea and saying what a direct message says.
    error = await mod.refused(
        ann, "POST", "/api/conversations", "FORBIDDEN", json=group(cal.id, bea.id)
    )
    assert error["message"] == f"you cannot add {bea.name}: you cannot message this user"
    assert (error["field"], error["user_ids"]) == ("members", [bea.id])
    assert await mod.ok(cal, "GET", "/api/conversations") == []
    # Blocks count either way, as for direct conversations.
    await mod.refused(bea, "POST", "/api/conversations", "FORBIDDEN", json=group(ann.id))
    # Nor can ann add her later, to a group or to a room.
    gid = (await mod.ok(ann, "POST", "/api/conversations", json=group(cal.id)))["id"]
    rid = await mod.room(ann)
    for conversation in (gid, rid):
        error = await mod.refused(
            ann,
            "POST",
            f"/api/conversations/{conversation}/members",
            "FORBIDDEN",
            json={"user_id": bea.id},
        )
        assert (error["field"], error["user_ids"]) == ("user_id", [bea.id])
    # Another member (here an admin) may add her: the rule is about who adds.
    await mod.ok(
        ann, "PUT", f"/api/conversations/{gid}/members/{cal.id}/role", json={"role": "admin"}
    )
    await mod.ok(cal, "POST", f"/api/conversations/{gid}/members", json={"user_id": bea.id})
    assert (await bea_ws.next("joined"))["conversation"]["id"] == gid
    # Public rooms stay open to all: each joins the other's room herself.
    await mod.ok(bea, "POST", f"/api/conversations/{rid}/join")
    await mod.ok(ann, "POST", f"/api/conversations/{await mod.room(bea)}/join")
    # Several refused users are all listed, in the order asked.
    await mod.ok(dan, "POST", f"/api/users/{ann.id}/block")
    error = await mod.refused(
        ann, "POST", "/api/conversations", "FORBIDDEN", json=group(dan.id, cal.id, bea.id)
    )
    assert error["user_ids"] == [dan.id, bea.id]
    assert error["message"] == (
        f"you cannot add {dan.name}, {bea.name}: you cannot message these users"
    )
    await bea_ws.close()


async def test_a_contacts_policy_keeps_strangers_from_adding_too(mod: Mod) -> None:
    ann, zoe, kim = [await mod.person(p) for p in ("ann", "zoe", "kim")]
    await mod.ok(zoe, "PUT", "/api/users/me/privacy", json={"dm_policy": "contacts"})
    direct = {"type": "direct", "user_id": zoe.id}
    await mod.refused(ann, "POST", "/api/conversations", "FORBIDDEN", json=direct)
    error = await mod.refused(
        ann,
        "POST",
        "/api/conversations",
        "FORBIDDEN",
        json={"type": "group", "name": "g", "members": [zoe.id]},
    )
    assert error["user_ids"] == [zoe.id]
    rid = await mod.room(ann)
    await mod.refused(
        ann, "POST", f"/api/conversations/{rid}/members", "FORBIDDEN", json={"user_id": zoe.id}
    )
    # Still a stranger: no shared conversation came of the attempts.
    await mod.refused(ann, "POST", "/api/conversations", "FORBIDDEN", json=direct)
    # A contact of hers may add her; once they share a room, so may ann.
    await mod.room(kim, zoe)
    made = await mod.ok(
        kim, "POST", "/api/conversations", json={"type": "group", "name": "g", "members": [zoe.id]}
    )
    assert made["member_count"] == 2
    await mod.ok(ann, "POST", f"/api/conversations/{await mod.room(zoe)}/join")
    await mod.ok(ann, "POST", f"/api/conversations/{rid}/members", json={"user_id": zoe.id})


async def test_reports_reach_the_admin_queue(mod: Mod) -> None:
    alice, bob, outsider = [await mod.person(p) for p in ("ali", "bob", "out")]
    admin = await mod.person("adm", admin=True)
    cid = await mod.room(alice, bob)
    message = (await mod.send(alice, cid, "something rude")).json()
    await mod.refused(
        outsider, "POST", f"/api/messages/{message['id']}/report", "NOT_FOUND", json={"reason": "x"}
    )
    await mod.refused(bob, "POST", "/api/messages/999999/report", "NOT_FOUND", json={})
    filed = await mod.ok(
        bob, "POST", f"/api/messages/{message['id']}/report", json={"reason": "rude"}
    )
    assert (filed["conversation_id"], filed["reporter_id"]) == (cid, bob.id)
    await mod.refused(bob, "GET", "/api/admin/reports", "FORBIDDEN")
    queue = await mod.ok(admin, "GET", "/api/admin/reports")
    assert filed["id"] in [r["id"] for r in queue["reports"]]
    done = await mod.ok(
        admin, "POST", f"/api/admin/reports/{filed['id']}/resolve", json={"resolution": "warned"}
    )
    assert done["resolved_by"] == admin.id
    await mod.refused(
        admin,
        "POST",
        f"/api/admin/reports/{filed['id']}/resolve",
        "NOT_FOUND",
        json={"resolution": "again"},
    )
    still_open = await mod.ok(admin, "GET", "/api/admin/reports")
    assert filed["id"] not in [r["id"] for r in still_open["reports"]]
    everything = await mod.ok(admin, "GET", "/api/admin/reports", params={"state": "all"})
    assert filed["id"] in [r["id"] for r in everything["reports"]]


async def test_audit_log_is_for_admins_paged_and_filtered(mod: Mod) -> None:
    owner, bob = [await mod.person(p) for p in ("own", "bob")]
    admin = await mod.person("adm", admin=True)
    start = now_ms()
    cid = await mod.room(owner, bob)
    await mod.ok(owner, "PUT", f"/api/conversations/{cid}/members/{bob.id}/mute", json={})
    await mod.ok(owner, "POST", f"/api/conversations/{cid}/members/{bob.id}/kick")
    await mod.ok(owner, "POST", f"/api/conversations/{cid}/invites", json={})
    await mod.refused(bob, "GET", "/api/admin/audit", "FORBIDDEN")
    async with httpx.AsyncClient(base_url=mod.server.base) as http:
        assert (await http.get("/api/admin/audit")).status_code == 401
    mine = await mod.ok(
        admin, "GET", "/api/admin/audit", params={"actor_id": owner.id, "since": start}
    )
    assert [e["action"] for e in mine["events"]] == [
        "invite.created",
        "member.kicked",
        "member.muted",
        "room.created",
    ]
    page = await mod.ok(admin, "GET", "/api/admin/audit", params={"actor_id": owner.id, "limit": 2})
    assert len(page["events"]) == 2
    assert page["next_before"] == page["events"][-1]["id"]
    rest = await mod.ok(
        admin,
        "GET",
        "/api/admin/audit",
        params={"actor_id": owner.id, "before": page["next_before"], "limit": 50},
    )
    assert [e["action"] for e in rest["events"]][:2] == ["member.muted", "room.created"]
    kicks = await mod.ok(
        admin,
        "GET",
        "/api/admin/audit",
        params={"action": "member.kicked", "target": f"{cid}:{bob.id}"},
    )
    assert [e["actor_id"] for e in kicks["events"]] == [owner.id]
    before = await mod.ok(
        admin, "GET", "/api/admin/audit", params={"until": start, "actor_id": owner.id}
    )
    assert [e["action"] for e in before["events"]] == ["user.registered"]


async def test_admin_deactivation_closes_sockets_at_once(mod: Mod) -> None:
    admin = await mod.person("adm", admin=True)
    bob = await mod.person("bob")
    bob_ws = await mod.connect(bob)
    await mod.refused(bob, "POST", f"/api/admin/users/{admin.id}/deactivate", "FORBIDDEN")
    got = await mod.ok(admin, "POST", f"/api/admin/users/{bob.id}/deactivate")
    assert got == {"id": bob.id, "is_active": False}
    assert await bob_ws.closed_with() == 4003
    await mod.refused(bob, "GET", "/api/conversations", "SESSION_REVOKED")
    await mod.ok(admin, "POST", f"/api/admin/users/{bob.id}/reactivate")
    async with httpx.AsyncClient(base_url=mod.server.base) as http:
        login = await http.post(
            "/api/auth/login", json={"login": bob.name, "password": "Sup3r-secret"}
        )
    assert login.status_code == 200
    audit = await mod.ok(
        admin, "GET", "/api/admin/audit", params={"target": str(bob.id), "action": "user.*"}
    )
    assert [e["action"] for e in audit["events"]][:2] == ["user.activated", "user.deactivated"]


async def test_notification_settings_per_member(mod: Mod) -> None:
    alice, bob, outsider = [await mod.person(p) for p in ("ali", "bob", "out")]
    cid = await mod.room(alice, bob)
    path = f"/api/conversations/{cid}/notifications"
    await mod.refused(outsider, "PUT", path, "NOT_FOUND", json={"level": "none"})
    phone = await mod.connect(bob)
    got = await mod.ok(bob, "PUT", path, json={"level": "mentions", "mute": True})
    assert got == {"conversation_id": cid, "level": "mentions", "muted": True, "muted_until": None}
    pushed = await phone.next("notifications")
    assert (pushed["conversation_id"], pushed["level"], pushed["muted"]) == (cid, "mentions", True)
    listed = {c["id"]: c for c in await mod.ok(bob, "GET", "/api/conversations")}
    assert listed[cid]["notifications"]["level"] == "mentions"
    laptop = await mod.connect(bob)
    hello = {c["id"]: c for c in laptop.hello["conversations"]}
    assert hello[cid]["notifications"] == {"level": "mentions", "muted": True, "muted_until": None}
    # Over the socket: mute for an hour; the other device hears of it.
    timed = await laptop.request(
        {"type": "set_notifications", "conversation_id": cid, "mute": 3600, "level": "all"}
    )
    assert timed["notifications"]["muted_until"] > now_ms()
    assert (await phone.next("notifications"))["level"] == "all"
    unmuted = await mod.ok(bob, "PUT", path, json={"mute": False})
    assert (unmuted["muted"], unmuted["level"]) == (False, "all")
    # Alice's settings are her own.
    alice_list = {c["id"]: c for c in await mod.ok(alice, "GET", "/api/conversations")}
    assert alice_list[cid]["notifications"] == {"level": "all", "muted": False, "muted_until": None}
    bad = await laptop.request(
        {"type": "set_notifications", "conversation_id": cid, "level": "loud"}
    )
    assert bad["code"] == "INVALID_FORMAT"
    await phone.close()
    await laptop.close()
