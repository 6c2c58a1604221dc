"""Joining through an invite answers with the conversation's real member count, over
REST and the socket, as joining a room by name does."""

from __future__ import annotations

from tests.moderation.conftest import ON_PACKAGE_LOOP, Mod

pytestmark = ON_PACKAGE_LOOP


async def test_joining_by_invite_counts_the_members(mod: Mod) -> None:
    owner, member, first, second = [await mod.person(p) for p in ("own", "mem", "one", "two")]
    cid = await mod.room(owner, member)
    invite = await mod.ok(owner, "POST", f"/api/conversations/{cid}/invites", json={})
    joined = await mod.ok(first, "POST", f"/api/invites/{invite['code']}/join")
    assert (joined["conversation"]["id"], joined["conversation"]["member_count"]) == (cid, 3)

    ws = await mod.connect(second)
    got = await ws.request({"type": "join_invite", "code": invite["code"]})
    assert (got["conversation"]["id"], got["conversation"]["member_count"]) == (cid, 4)
    await ws.close()
