"""Moderation that lasts: a mute outlives leaving, kicks and bans on every path; an
expired ban stops applying everywhere at once; a node that missed a signal converges."""

from __future__ import annotations

import asyncio
import random

import pytest

from palaver.core.models import now_ms
from palaver.core.moderation import FOREVER, Ban
from palaver.services import signals
from palaver.services.moderation import MODERATION_CHANNEL, RELOAD_SECONDS
from tests.moderation.conftest import ON_PACKAGE_LOOP, Mod, Person
from tests.realtime.conftest import Client, start_server

pytestmark = ON_PACKAGE_LOOP


async def _refused_everywhere(mod: Mod, who: Person, ws: Client, cid: int) -> None:
    """Both send paths refuse: REST (reads the membership) and the socket (memory)."""
    assert (await ws.send_text(cid, "let me speak"))["code"] == "MUTED"
    await mod.refused(
        who, "POST", f"/api/conversations/{cid}/messages", "MUTED", json={"content": "x"}
    )


async def test_a_mute_outlives_leaving_kicks_and_bans(mod: Mod) -> None:
    owner, carol = await mod.person("own"), await mod.person("car")
    cid = await mod.room(owner, carol)
    carol_ws = await mod.connect(carol)
    await mod.ok(owner, "PUT", f"/api/conversations/{cid}/members/{carol.id}/mute", json={})
    await _refused_everywhere(mod, carol, carol_ws, cid)

    # Leave and come back over the socket.
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/leave")
    assert (await carol_ws.next("left"))["conversation_id"] == cid
    assert (await carol_ws.request({"type": "join", "room": cid}))["type"] == "result"
    await carol_ws.next("joined")
    await _refused_everywhere(mod, carol, carol_ws, cid)
    members = await mod.ok(owner, "GET", f"/api/conversations/{cid}/members")
    assert {m["user_id"]: m["muted"] for m in members}[carol.id] is True

    # Kicked, then back through an invite: a kick is no way out of a mute.
    await mod.ok(owner, "POST", f"/api/conversations/{cid}/members/{carol.id}/kick")
    await carol_ws.next("left")
    invite = await mod.ok(owner, "POST", f"/api/conversations/{cid}/invites", json={})
    await mod.ok(carol, "POST", f"/api/invites/{invite['code']}/join")
    await carol_ws.next("joined")
    await _refused_everywhere(mod, carol, carol_ws, cid)

    # Banned, unbanned, added back by the owner: still muted.
    await mod.ok(owner, "POST", f"/api/conversations/{cid}/bans", json={"user_id": carol.id})
    await carol_ws.next("left")
    await mod.ok(owner, "DELETE", f"/api/conversations/{cid}/bans/{carol.id}")
    await mod.ok(owner, "POST", f"/api/conversations/{cid}/members", json={"user_id": carol.id})
    await carol_ws.next("joined")
    await _refused_everywhere(mod, carol, carol_ws, cid)

    # A node started now knows the mute from the store alone (as after a restart).
    async for other in start_server(mod.server.settings):
        elsewhere = await other.connect(carol.token, resume={})
        assert (await elsewhere.send_text(cid, "from a fresh node"))["code"] == "MUTED"
        assert (
            await other.rest(
                carol.token, "POST", f"/api/conversations/{cid}/messages", json={"content": "x"}
            )
        ).json()["error"]["code"] == "MUTED"
        await elsewhere.close()

    # Lifted by unmute, and only by unmute (or its end).
    await mod.ok(owner, "DELETE", f"/api/conversations/{cid}/members/{carol.id}/mute")
    assert (await carol_ws.send_text(cid, "free"))["type"] == "ack"
    assert (await mod.send(carol, cid, "free too")).status_code == 201
    await carol_ws.close()


async def test_an_expired_ban_stops_applying_everywhere(mod: Mod) -> None:
    owner, carol, dave, erin, fred = [
        await mod.person(p) for p in ("own", "car", "dav", "eri", "fre")
    ]
    cid = await mod.room(owner, carol)
    past, now = now_ms() - 1, now_ms()
    # Bans whose time is up: one removed a member, the others reached people outside.
    for who in (carol, dave, fred):
        await mod.services.store.ban_member(Ban(cid, who.id, past, owner.id, now - 10))
    in_force = await mod.ok(
        owner, "POST", f"/api/conversations/{cid}/bans", json={"user_id": erin.id}
    )
    bans_path = f"/api/conversations/{cid}/bans"
    assert [b["user_id"] for b in await mod.ok(owner, "GET", bans_path)] == [erin.id]
    # An expired ban cannot be lifted: there is none.
    await mod.refused(owner, "DELETE", f"{bans_path}/{carol.id}", "NOT_FOUND")
    # Joining, being added and invites all let them in.
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/join")
    await mod.ok(owner, "POST", f"/api/conversations/{cid}/members", json={"user_id": dave.id})
    invite = await mod.ok(owner, "POST", f"/api/conversations/{cid}/invites", json={})
    assert (await mod.ok(fred, "POST", f"/api/invites/{invite['code']}/join"))["joined"] is True
    # The ban in force keeps out on every path.
    error = await mod.refused(erin, "POST", f"/api/conversations/{cid}/join", "BANNED")
    assert error["until"] is None
    await mod.refused(
        owner, "POST", f"/api/conversations/{cid}/members", "BANNED", json={"user_id": erin.id}
    )
    await mod.refused(erin, "POST", f"/api/invites/{invite['code']}/join", "BANNED")
    assert in_force["until"] is None


async def test_a_node_that_missed_signals_converges_on_reload(mod: Mod) -> None:
    owner, carol, dave = [await mod.person(p) for p in ("own", "car", "dav")]
    cid = await mod.room(owner, carol)
    other = await mod.room(owner, carol)
    direct = await mod.ok(
        carol, "POST", "/api/conversations", json={"type": "direct", "user_id": dave.id}
    )
    carol_ws = await mod.connect(carol)
    store, moderation = mod.services.store, mod.services.moderation
    # Another node changed the store and its signals were lost (a broker restart):
    # a mute, a block and a conversation filter.
    await store.set_member_mute(cid, carol.id, FOREVER)
    await store.add_block(dave.id, carol.id, now_ms())
    await store.set_conversation_filter(other, ["zap"], "reject")
    assert (await carol_ws.send_text(cid, "stale")).get("type") == "ack"
    await moderation.reload()
    assert (await carol_ws.send_text(cid, "now"))["code"] == "MUTED"
    assert (await carol_ws.send_text(direct["id"], "hi"))["code"] == "FORBIDDEN"
    assert (await carol_ws.send_text(other, "zap"))["code"] == "CONTENT_REJECTED"
    # The lifts were lost too.
    await store.set_member_mute(cid, carol.id, None)
    await store.remove_block(dave.id, carol.id)
    await store.set_conversation_filter(other, [], None)
    await moderation.reload()
    for target, text in ((cid, "back"), (direct["id"], "hi"), (other, "zap")):
        assert (await carol_ws.send_text(target, text))["type"] == "ack", target
    await carol_ws.close()


async def test_a_signal_arriving_during_a_reload_is_kept(
    mod: Mod, monkeypatch: pytest.MonkeyPatch
) -> None:
    owner, carol = await mod.person("own"), await mod.person("car")
    cid = await mod.room(owner, carol)
    store, moderation = mod.services.store, mod.services.moderation
    reading, release = asyncio.Event(), asyncio.Event()
    all_blocks = store.all_blocks

    async def slow_blocks() -> list[tuple[int, int]]:
        reading.set()
        await release.wait()
        return await all_blocks()

    monkeypatch.setattr(store, "all_blocks", slow_blocks)
    reload = asyncio.create_task(moderation.reload())
    await reading.wait()
    # The mutes were read before this mute was stored; its signal comes meanwhile.
    await store.set_member_mute(cid, carol.id, FOREVER)
    moderation._on_signal(
        MODERATION_CHANNEL,
        signals.encode("mute", conversation_id=cid, user_id=carol.id, until=FOREVER),
    )
    release.set()
    await reload
    assert moderation.state.mutes[(cid, carol.id)] == FOREVER
    await store.set_member_mute(cid, carol.id, None)
    monkeypatch.undo()
    await moderation.reload()
    assert (cid, carol.id) not in moderation.state.mutes


async def test_reloads_come_every_45_seconds_give_or_take_a_quarter(mod: Mod) -> None:
    owner, carol = await mod.person("own"), await mod.person("car")
    cid = await mod.room(owner, carol)
    moderation = mod.services.moderation
    waits: list[float] = []
    second_wait = asyncio.Event()

    async def fake_sleep(seconds: float) -> None:
        waits.append(seconds)
        if len(waits) > 1:
            second_wait.set()
            await asyncio.Future()  # the test ends the loop here

    random.seed(6)
    await mod.services.store.set_member_mute(cid, carol.id, FOREVER)
    loop = asyncio.create_task(moderation._reload_forever(fake_sleep))
    await second_wait.wait()
    loop.cancel()
    # One reload ran between the two waits, and it saw the unsignalled mute.
    assert moderation.state.mutes[(cid, carol.id)] == FOREVER
    assert all(RELOAD_SECONDS * 0.75 <= w <= RELOAD_SECONDS * 1.25 for w in waits)
    assert len(set(waits)) == 2  # jittered
    await mod.services.store.set_member_mute(cid, carol.id, None)
    await moderation.reload()
