"""The store's moderation and safety methods on their own: mutes (which outlive the
membership), notification settings, ownership, bans, invites (their use limit under
concurrent callers), blocks, reports, filters, privacy and the audit search."""

from __future__ import annotations

import asyncio

from palaver.core.models import Role
from palaver.core.moderation import FOREVER, Ban, Invite
from palaver.store.sql import SqlStore

from .conftest import StoreFactory
from .helpers import DAY, T0, room, send, user


async def test_a_mute_outlives_the_membership(store: SqlStore) -> None:
    alice, bob, carol = [await user(store, n) for n in ("alice", "bob", "carol")]
    general = await room(store, "general", alice, bob)
    assert await store.set_member_mute(general.id, bob.id, FOREVER)
    assert not await store.set_member_mute(general.id, carol.id, FOREVER)  # not a member
    member = await store.get_member(general.id, bob.id)
    assert member is not None
    assert member.muted_until == FOREVER
    assert await store.active_mutes(T0) == [(general.id, bob.id, FOREVER)]
    # Leaving keeps the mute; coming back starts muted.
    assert await store.remove_member(general.id, bob.id)
    assert await store.active_mutes(T0) == [(general.id, bob.id, FOREVER)]
    back = await store.add_member(general.id, bob.id, Role.MEMBER, T0 + 1)
    assert back is not None
    assert back.muted_until == FOREVER
    stored = await store.get_member(general.id, bob.id)
    assert stored is not None
    assert stored.muted_until == FOREVER
    # A ban removes the membership, not the mute.
    await store.ban_member(Ban(general.id, bob.id, None, alice.id, T0 + 2))
    assert await store.active_mutes(T0) == [(general.id, bob.id, FOREVER)]
    await store.remove_ban(general.id, bob.id)
    await store.add_member(general.id, bob.id, Role.MEMBER, T0 + 3)
    # A timed mute ends by itself; a lifted one is gone for the next membership too.
    assert await store.set_member_mute(general.id, bob.id, T0 + 100)
    assert await store.active_mutes(T0 + 99) == [(general.id, bob.id, T0 + 100)]
    assert await store.active_mutes(T0 + 100) == []
    assert await store.set_member_mute(general.id, bob.id, None)
    assert await store.active_mutes(T0) == []
    await store.remove_member(general.id, bob.id)
    again = await store.add_member(general.id, bob.id, Role.MEMBER, T0 + 4)
    assert again is not None
    assert again.muted_until is None


async def test_notification_settings_and_ownership(store: SqlStore) -> None:
    alice, bob, carol = [await user(store, n) for n in ("alice", "bob", "carol")]
    general = await room(store, "general", alice, bob)
    got = await store.set_notifications(general.id, bob.id, "mentions", T0 + DAY)
    assert got is not None
    assert (got.notify_level, got.notify_muted_until) == ("mentions", T0 + DAY)
    assert await store.set_notifications(general.id, carol.id, "none", None) is None
    cleared = await store.set_notifications(general.id, bob.id, "all", None)
    assert cleared is not None
    assert cleared.notify_muted_until is None
    # Alice's own settings are untouched.
    mine = await store.get_member(general.id, alice.id)
    assert mine is not None
    assert mine.notify_level == "all"
    assert await store.transfer_ownership(general.id, alice.id, bob.id)
    roles = {m.user_id: m.role for m in await store.list_members(general.id)}
    assert roles == {alice.id: Role.ADMIN, bob.id: Role.OWNER}
    assert not await store.transfer_ownership(general.id, bob.id, carol.id)
    roles = {m.user_id: m.role for m in await store.list_members(general.id)}
    assert roles == {alice.id: Role.ADMIN, bob.id: Role.OWNER}


async def test_bans_replace_remove_and_list_only_those_in_force(store: SqlStore) -> None:
    alice, bob, carol, dave = [await user(store, n) for n in ("alice", "bob", "carol", "dave")]
    general = await room(store, "general", alice, bob)
    assert await store.ban_member(Ban(general.id, bob.id, T0 + 100, alice.id, T0, "spam"))
    assert await store.get_member(general.id, bob.id) is None
    assert not await store.ban_member(Ban(general.id, carol.id, None, alice.id, T0 + 1))
    # Banning again replaces the ban.
    assert not await store.ban_member(Ban(general.id, bob.id, T0 + 50, alice.id, T0 + 2))
    ban = await store.get_ban(general.id, bob.id)
    assert ban is not None
    assert (ban.until, ban.at, ban.reason) == (T0 + 50, T0 + 2, None)
    await store.ban_member(Ban(general.id, dave.id, T0 - 1, alice.id, T0 - 10))
    everything = await store.list_bans(general.id)
    assert [b.user_id for b in everything] == [bob.id, carol.id, dave.id]
    # Expired bans (until <= now) are not listed as in force; a ban without end always is.
    assert [b.user_id for b in await store.list_bans(general.id, T0)] == [bob.id, carol.id]
    assert [b.user_id for b in await store.list_bans(general.id, T0 + 50)] == [carol.id]
    assert await store.remove_ban(general.id, bob.id)
    assert not await store.remove_ban(general.id, bob.id)
    assert await store.get_ban(general.id, bob.id) is None
    # An expired ban is still found by get_ban (callers judge it by time).
    expired = await store.get_ban(general.id, dave.id)
    assert expired is not None
    assert not expired.active(T0)


def _invite(code: str, cid: int, by: int, **fields: int | None) -> Invite:
    values: dict[str, int | None] = {"expires_at": None, "max_uses": None, **fields}
    return Invite(
        code, cid, by, T0, values["expires_at"], values["max_uses"], 0, values.get("revoked_at")
    )


async def test_invites_count_uses_expire_and_revoke(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await store.create_invite(_invite("twice", general.id, alice.id, max_uses=2))
    await store.create_invite(_invite("later", general.id, alice.id, expires_at=T0 + 10))
    assert [i.code for i in await store.list_invites(general.id)] == ["later", "twice"]
    used = await store.use_invite("twice", T0)
    assert used is not None
    assert used.uses == 1
    assert (await store.use_invite("twice", T0)) is not None
    assert await store.use_invite("twice", T0) is None  # used up
    got = await store.get_invite("twice")
    assert got is not None
    assert got.uses == 2
    assert await store.use_invite("later", T0 + 9) is not None
    assert await store.use_invite("later", T0 + 10) is None  # expired
    assert await store.revoke_invite("later", T0 + 1)
    assert not await store.revoke_invite("later", T0 + 2)
    revoked = await store.get_invite("later")
    assert revoked is not None
    assert revoked.revoked_at == T0 + 1
    assert await store.use_invite("later", T0 + 3) is None
    assert await store.use_invite("nothing", T0) is None
    assert await store.get_invite("nothing") is None


async def test_an_invites_last_uses_go_to_one_caller_each(
    store: SqlStore, more_stores: StoreFactory
) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await store.create_invite(_invite("three", general.id, alice.id, max_uses=3))
    stores = [store, *[await more_stores() for _ in range(3)]]
    results = await asyncio.gather(*(s.use_invite("three", T0) for s in stores for _ in range(4)))
    counted = sorted(r.uses for r in results if r is not None)
    assert counted == [1, 2, 3]
    got = await store.get_invite("three")
    assert got is not None
    assert got.uses == 3


async def test_blocks_and_direct_ids(store: SqlStore) -> None:
    alice, bob, carol = [await user(store, n) for n in ("alice", "bob", "carol")]
    direct, _ = await store.get_or_create_direct(bob.id, alice.id, T0)
    assert await store.add_block(alice.id, bob.id, T0)
    assert not await store.add_block(alice.id, bob.id, T0 + 1)
    assert await store.add_block(alice.id, carol.id, T0 + 2)
    assert await store.add_block(carol.id, alice.id, T0 + 3)
    assert await store.list_blocks(alice.id) == [(bob.id, T0), (carol.id, T0 + 2)]
    assert sorted(await store.all_blocks()) == sorted(
        [(alice.id, bob.id), (alice.id, carol.id), (carol.id, alice.id)]
    )
    assert await store.remove_block(alice.id, bob.id)
    assert not await store.remove_block(alice.id, bob.id)
    assert await store.list_blocks(alice.id) == [(carol.id, T0 + 2)]
    low, high = sorted((alice.id, bob.id))
    found = await store.direct_ids([(alice.id, bob.id), (carol.id, alice.id)])
    assert found == {(low, high): direct.id}


async def test_reports_queue_pages_and_closes_once(store: SqlStore) -> None:
    alice, bob, admin = [await user(store, n) for n in ("alice", "bob", "admin")]
    general = await room(store, "general", alice, bob)
    messages = await send(store, general, alice, "one", "two", "three")
    filed = [
        await store.add_report(a.message.id, general.id, bob.id, f"r{i}", T0 + i)
        for i, a in enumerate(messages)
    ]
    assert [r.id for r in await store.list_reports()] == [r.id for r in reversed(filed)]
    page = await store.list_reports(limit=2)
    assert [r.id for r in page] == [filed[2].id, filed[1].id]
    rest = await store.list_reports(before_id=page[-1].id)
    assert [r.id for r in rest] == [filed[0].id]
    done = await store.resolve_report(filed[1].id, admin.id, T0 + 10, "warned")
    assert done is not None
    assert (done.resolved_by, done.resolved_at, done.resolution) == (admin.id, T0 + 10, "warned")
    assert await store.resolve_report(filed[1].id, admin.id, T0 + 11, "again") is None
    assert await store.resolve_report(999_999, admin.id, T0, "none") is None
    assert [r.id for r in await store.list_reports()] == [filed[2].id, filed[0].id]
    everything = await store.list_reports(open_only=False)
    assert [r.id for r in everything] == [r.id for r in reversed(filed)]
    assert everything[1].reason == "r1"


async def test_filters_and_privacy(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    other = await room(store, "other", alice)
    assert await store.conversation_filters() == {}
    await store.set_conversation_filter(general.id, ["blast", "zap"], "reject")
    await store.set_conversation_filter(other.id, [], "mask")
    assert await store.conversation_filters() == {
        general.id: (["blast", "zap"], "reject"),
        other.id: ([], "mask"),
    }
    await store.set_conversation_filter(general.id, ["zap"], None)
    await store.set_conversation_filter(other.id, [], None)  # removes it
    assert await store.conversation_filters() == {general.id: (["zap"], None)}
    assert await store.get_dm_policy(alice.id) is None
    await store.set_dm_policy(alice.id, "contacts")
    await store.set_dm_policy(alice.id, "everyone")
    assert await store.get_dm_policy(alice.id) == "everyone"


async def test_audit_search_filters_and_pages(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    entries = [
        ("member.muted", alice.id, "1:2", T0),
        ("member.kicked", alice.id, "1:2", T0 + 1),
        ("invite.created", bob.id, "1", T0 + 2),
        ("member_x.other", bob.id, "1", T0 + 3),  # not under "member."
        ("member.banned", bob.id, "1:3", T0 + 4),
    ]
    for action, actor, target, at in entries:
        await store.add_audit(action, at=at, actor_id=actor, target=target, details={"n": at})

    async def actions(**filters: object) -> list[str]:
        return [e.action for e in await store.search_audit(**filters)]  # type: ignore[arg-type]

    assert await actions(action="member.*") == ["member.banned", "member.kicked", "member.muted"]
    assert await actions(action="member.") == ["member.banned", "member.kicked", "member.muted"]
    assert await actions(action="member.kicked") == ["member.kicked"]
    assert await actions(actor_id=bob.id) == ["member.banned", "member_x.other", "invite.created"]
    assert await actions(target="1:2") == ["member.kicked", "member.muted"]
    assert await actions(since=T0 + 1, until=T0 + 3) == ["invite.created", "member.kicked"]
    first = await store.search_audit(limit=2)
    assert [e.action for e in first] == ["member.banned", "member_x.other"]
    rest = await store.search_audit(before_id=first[-1].id, action="member.*")
    assert [e.action for e in rest] == ["member.kicked", "member.muted"]
    assert rest[0].details == {"n": T0 + 1}
