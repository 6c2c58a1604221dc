"""Invite links and the content filter."""

from __future__ import annotations

from palaver.core.models import now_ms
from palaver.core.moderation import Invite
from tests.moderation.conftest import ON_PACKAGE_LOOP, Mod

pytestmark = ON_PACKAGE_LOOP


async def test_invite_links_expire_run_out_and_can_be_revoked(mod: Mod) -> None:
    owner, member, outsider, first, second = [
        await mod.person(p) for p in ("own", "mem", "out", "one", "two")
    ]
    cid = await mod.room(owner, member)
    path = f"/api/conversations/{cid}/invites"
    await mod.refused(member, "POST", path, "FORBIDDEN", json={})
    await mod.refused(outsider, "POST", path, "NOT_FOUND", json={})
    await mod.refused(outsider, "GET", path, "NOT_FOUND")
    once = await mod.ok(owner, "POST", path, json={"max_uses": 1, "duration": 3600})
    other = await mod.ok(owner, "POST", path, json={})
    assert once["code"] != other["code"]
    assert len(once["code"]) >= 20
    assert once["expires_at"] > now_ms()
    assert once["max_uses"] == 1
    joined = await mod.ok(first, "POST", f"/api/invites/{once['code']}/join")
    assert joined["joined"] is True
    assert joined["conversation"]["id"] == cid
    # Used up, unknown, revoked and expired codes all look the same.
    await mod.refused(second, "POST", f"/api/invites/{once['code']}/join", "NOT_FOUND")
    await mod.refused(second, "POST", "/api/invites/not-a-code/join", "NOT_FOUND")
    await mod.refused(member, "DELETE", f"/api/invites/{other['code']}", "FORBIDDEN")
    await mod.ok(owner, "DELETE", f"/api/invites/{other['code']}")
    await mod.refused(second, "POST", f"/api/invites/{other['code']}/join", "NOT_FOUND")
    expired = Invite("expired-code-123", cid, owner.id, now_ms() - 10, now_ms() - 1, None, 0)
    await mod.services.store.create_invite(expired)
    await mod.refused(second, "POST", "/api/invites/expired-code-123/join", "NOT_FOUND")
    listed = await mod.ok(owner, "GET", path)
    assert {i["code"]: (i["uses"], i["revoked"]) for i in listed} == {
        once["code"]: (1, False),
        other["code"]: (0, True),
        "expired-code-123": (0, False),
    }
    # Over the socket, into a private group.
    group = await mod.ok(owner, "POST", "/api/conversations", json={"type": "group", "name": "g"})
    ws = await mod.connect(owner)
    made = await ws.request({"type": "create_invite", "conversation_id": group["id"]})
    second_ws = await mod.connect(second)
    got = await second_ws.request({"type": "join_invite", "code": made["invite"]["code"]})
    assert got["joined"] is True
    assert (await second_ws.next("joined"))["conversation"]["id"] == group["id"]
    assert (await second_ws.send_text(group["id"], "hi"))["type"] == "ack"
    audit = await mod.services.store.search_audit(action="invite.*")
    assert {e.action for e in audit} >= {"invite.created", "invite.revoked", "invite.used"}
    await ws.close()
    await second_ws.close()


async def test_filter_masks_whole_words_ignoring_case_and_accents(mod: Mod) -> None:
    # The server's words are darn and heck, masked (see conftest).
    owner = await mod.person("own")
    member = await mod.person("mem")
    cid = await mod.room(owner, member)
    ws = await mod.connect(member)
    ack = await ws.send_text(cid, "DÁRN it, darned heck!")
    assert ack["type"] == "ack"
    history = await mod.ok(owner, "GET", f"/api/conversations/{cid}/messages")
    stored = [m["content"] for m in history["messages"] if m["seq"] == ack["seq"]]
    assert stored == ["**** it, darned ****!"]
    sent = await mod.send(member, cid, "oh darn")
    assert sent.json()["content"] == "oh ****"
    # The owner switches the room to reject and adds a word of its own.
    await mod.refused(
        member, "PUT", f"/api/conversations/{cid}/filter", "FORBIDDEN", json={"words": []}
    )
    got = await mod.ok(
        owner,
        "PUT",
        f"/api/conversations/{cid}/filter",
        json={"words": ["Blast"], "action": "reject"},
    )
    assert got == {
        "conversation_id": cid,
        "words": ["blast"],
        "action": "reject",
        "effective_action": "reject",
    }
    refused = await ws.send_text(cid, "blast!")
    assert refused["code"] == "CONTENT_REJECTED"
    error = await mod.refused(
        member,
        "POST",
        f"/api/conversations/{cid}/messages",
        "CONTENT_REJECTED",
        json={"content": "darn"},
    )
    assert error["field"] == "content"
    assert (await ws.send_text(cid, "blasting is fine"))["type"] == "ack"
    # Other rooms keep the server's list and action.
    other = await mod.room(owner, member)
    assert (await mod.send(member, other, "blast")).json()["content"] == "blast"
    # One audit entry per member and conversation per interval, not one per hit.
    hits = await mod.services.store.search_audit(action="filter.hit", actor_id=member.id)
    assert len(hits) == 1
    assert hits[0].target == str(cid)
    # Edits are filtered as sends are: masked in the server's rooms, refused here.
    assert mod.services.moderation.filter_text(other, "heck no") == "**** no"
    fine = (await mod.send(member, other, "fine")).json()
    edited = await mod.ok(
        member, "PATCH", f"/api/messages/{fine['message_id']}", json={"content": "heck no"}
    )
    assert edited["content"] == "**** no"
    clean = (await mod.send(member, cid, "clean")).json()
    await mod.refused(
        member,
        "PATCH",
        f"/api/messages/{clean['message_id']}",
        "CONTENT_REJECTED",
        json={"content": "blast it"},
    )
    await ws.close()
