from __future__ import annotations

import asyncio

import pytest

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import ConversationKind, MessageKind, NewMessage, Role
from palaver.store.base import CursorUpdate
from palaver.store.sql import SqlStore

from .conftest import StoreFactory
from .helpers import T0, room, send, user


async def test_create_room(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "General", alice, bob)
    assert general.kind is ConversationKind.ROOM
    assert general.name == "General"
    assert (general.last_seq, general.min_seq, general.created_by) == (0, 1, alice.id)
    assert await store.get_conversation(general.id) == general
    assert await store.get_conversation(general.id + 100) is None
    members = await store.list_members(general.id)
    assert [(m.user_id, m.role, m.read_seq, m.delivered_seq) for m in members] == [
        (alice.id, Role.OWNER, 0, 0),
        (bob.id, Role.MEMBER, 0, 0),
    ]


async def test_room_name_unique_case_insensitively(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await room(store, "General", alice)
    with pytest.raises(PalaverError) as caught:
        await room(store, "GENERAL", alice)
    assert caught.value.code is ErrorCode.CONFLICT
    assert caught.value.field == "name"


async def test_groups_may_share_a_name(store: SqlStore) -> None:
    alice = await user(store, "alice")
    for _ in range(2):
        group = await store.create_conversation(
            kind=ConversationKind.GROUP,
            name="Team",
            created_by=alice.id,
            members=[(alice.id, Role.OWNER), (alice.id, Role.MEMBER)],
            at=T0,
        )
        assert [m.role for m in await store.list_members(group.id)] == [Role.OWNER]
    assert await store.get_room_by_name("team") is None


async def test_create_conversation_refuses_directs(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="get_or_create_direct"):
        await store.create_conversation(
            kind=ConversationKind.DIRECT, name=None, created_by=None, members=[], at=T0
        )


async def test_create_conversation_with_missing_member(store: SqlStore) -> None:
    alice = await user(store, "alice")
    with pytest.raises(PalaverError) as caught:
        await store.create_conversation(
            kind=ConversationKind.GROUP,
            name=None,
            created_by=alice.id,
            members=[(alice.id, Role.OWNER), (999, Role.MEMBER)],
            at=T0,
        )
    assert caught.value.code is ErrorCode.NOT_FOUND
    assert await store.user_conversation_ids(alice.id) == []


async def test_get_room_by_name(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "General", alice)
    assert await store.get_room_by_name("gEnErAl") == general
    assert await store.get_room_by_name("random") is None


async def test_list_rooms(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    beta = await room(store, "beta", alice, bob)
    alpha = await room(store, "Alpha", alice)
    alps = await room(store, "alps_club", bob)
    await store.create_conversation(
        kind=ConversationKind.GROUP, name="aaa", created_by=None, members=[], at=T0
    )
    await store.get_or_create_direct(alice.id, bob.id, T0)
    listed = await store.list_rooms()
    assert [(c.id, n) for c, n in listed] == [(alpha.id, 1), (alps.id, 1), (beta.id, 2)]
    assert [c.id for c, _ in await store.list_rooms(query="AL")] == [alpha.id, alps.id]
    assert [c.id for c, _ in await store.list_rooms(query="alps_")] == [alps.id]
    assert [c.id for c, _ in await store.list_rooms(query="al%")] == []
    assert [c.id for c, _ in await store.list_rooms(limit=1, offset=1)] == [alps.id]


async def test_get_or_create_direct(store: SqlStore) -> None:
    alice, bob, carol = await user(store, "alice"), await user(store, "bob"), await user(store, "c")
    direct, created = await store.get_or_create_direct(bob.id, alice.id, T0)
    assert created
    assert direct.kind is ConversationKind.DIRECT
    assert direct.name is None
    assert await store.member_ids(direct.id) == sorted([alice.id, bob.id])
    again, created_again = await store.get_or_create_direct(alice.id, bob.id, T0 + 1)
    assert again == direct
    assert not created_again
    other, created_other = await store.get_or_create_direct(alice.id, carol.id, T0)
    assert created_other
    assert other.id != direct.id
    with pytest.raises(ValueError, match="distinct"):
        await store.get_or_create_direct(alice.id, alice.id, T0)


async def test_get_or_create_direct_concurrently(
    store: SqlStore, more_stores: StoreFactory
) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    stores = [store, *[await more_stores() for _ in range(3)]]
    results = await asyncio.gather(
        *(s.get_or_create_direct(alice.id, bob.id, T0) for s in stores for _ in range(2))
    )
    assert len({c.id for c, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await store.member_ids(results[0][0].id) == sorted([alice.id, bob.id])


async def test_add_member_starts_at_last_seq(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice)
    await send(store, general, alice, "one", "two")
    joined = await store.add_member(general.id, bob.id, Role.MEMBER, T0 + 5)
    assert joined is not None
    assert (joined.read_seq, joined.delivered_seq, joined.joined_at) == (2, 2, T0 + 5)
    assert await store.get_member(general.id, bob.id) == joined
    assert await store.add_member(general.id, bob.id, Role.ADMIN, T0) is None
    assert await store.add_member(general.id + 100, bob.id, Role.MEMBER, T0) is None
    assert await store.add_member(general.id, 999, Role.MEMBER, T0) is None


async def test_remove_member_and_roles(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    assert await store.set_member_role(general.id, bob.id, Role.ADMIN)
    member = await store.get_member(general.id, bob.id)
    assert member is not None
    assert member.role is Role.ADMIN
    assert not await store.set_member_role(general.id, 999, Role.ADMIN)
    assert await store.remove_member(general.id, bob.id)
    assert not await store.remove_member(general.id, bob.id)
    assert await store.get_member(general.id, bob.id) is None
    assert await store.member_ids(general.id) == [alice.id]


async def test_an_owner_leaving_hands_ownership_on(store: SqlStore) -> None:
    owner, ann, bob, cal = [await user(store, n) for n in ("owner", "ann", "bob", "cal")]
    general = await room(store, "general", owner)
    for at, member in enumerate((ann, bob, cal), start=1):
        await store.add_member(general.id, member.id, Role.MEMBER, T0 + at)
    await store.set_member_role(general.id, cal.id, Role.ADMIN)
    await store.set_member_role(general.id, bob.id, Role.ADMIN)

    async def roles() -> dict[int, Role]:
        return {m.user_id: m.role for m in await store.list_members(general.id)}

    async def heir_after(leaver: int) -> int | None:
        left, heir = await store.leave_conversation(general.id, leaver)
        assert left
        return None if heir is None else heir.user_id

    # A non-member's leaving changes nothing.
    assert await store.leave_conversation(general.id, 999) == (False, None)
    # The longest-standing admin inherits, as the membership returned says.
    _, heir = await store.leave_conversation(general.id, owner.id)
    assert heir is not None
    assert heir == await store.get_member(general.id, bob.id)
    assert heir.role is Role.OWNER
    assert await roles() == {ann.id: Role.MEMBER, bob.id: Role.OWNER, cal.id: Role.ADMIN}
    assert await store.leave_conversation(general.id, owner.id) == (False, None)
    # Then the other admin; a member's leaving changes no role; then the
    # longest-standing member.
    assert await heir_after(bob.id) == cal.id
    await store.add_member(general.id, owner.id, Role.MEMBER, T0 + 9)
    assert await heir_after(owner.id) is None
    assert await heir_after(cal.id) == ann.id
    assert await roles() == {ann.id: Role.OWNER}
    # The last member leaves an empty conversation.
    assert await heir_after(ann.id) is None
    assert await store.list_members(general.id) == []
    # Whoever comes back first owns it; the next one is a member.
    back = await store.add_member(general.id, bob.id, Role.MEMBER, T0 + 20)
    assert back is not None
    assert back.role is Role.OWNER
    assert await roles() == {bob.id: Role.OWNER}
    again = await store.add_member(general.id, cal.id, Role.MEMBER, T0 + 21)
    assert again is not None
    assert again.role is Role.MEMBER


async def test_newcomers_to_an_empty_room_make_one_owner(
    store: SqlStore, more_stores: StoreFactory
) -> None:
    """Joins racing on other connections (other processes) and the last member's
    leaving: exactly one owner comes out, whatever the order."""
    people = [await user(store, f"u{i}") for i in range(6)]
    last = people[0]
    general = await room(store, "general", last)
    stores = [store, *[await more_stores() for _ in range(3)]]
    results = await asyncio.gather(
        stores[0].leave_conversation(general.id, last.id),
        *(
            stores[i % len(stores)].add_member(general.id, p.id, Role.MEMBER, T0 + i)
            for i, p in enumerate(people[1:], start=1)
        ),
    )
    assert all(m is not None for m in results[1:])
    roles = [m.role for m in await store.list_members(general.id)]
    assert len(roles) == 5
    assert roles.count(Role.OWNER) == 1


async def test_members_who_joined_together_inherit_by_user_id(store: SqlStore) -> None:
    owner, ann, bob = [await user(store, n) for n in ("owner", "ann", "bob")]
    team = await store.create_conversation(
        kind=ConversationKind.GROUP,
        name="team",
        created_by=owner.id,
        members=[(owner.id, Role.OWNER), (bob.id, Role.MEMBER), (ann.id, Role.MEMBER)],
        at=T0,
    )
    _, heir = await store.leave_conversation(team.id, owner.id)
    assert heir is not None
    assert heir.user_id == min(ann.id, bob.id)


async def test_a_deactivated_account_inherits_only_when_nobody_else_can(
    store: SqlStore,
) -> None:
    owner, ann, bob = [await user(store, n) for n in ("owner", "ann", "bob")]
    general = await room(store, "general", owner)
    await store.add_member(general.id, ann.id, Role.ADMIN, T0 + 1)
    await store.add_member(general.id, bob.id, Role.MEMBER, T0 + 2)
    await store.update_user(ann.id, is_active=False)
    _, heir = await store.leave_conversation(general.id, owner.id)
    assert heir is not None
    assert heir.user_id == bob.id
    _, heir = await store.leave_conversation(general.id, bob.id)
    assert heir is not None
    assert heir.user_id == ann.id


async def test_membership_queries(store: SqlStore) -> None:
    alice, bob, carol, dave = [await user(store, n) for n in ("alice", "bob", "carol", "dave")]
    one = await room(store, "one", alice, bob)
    two = await room(store, "two", carol, alice)
    await room(store, "three", dave)
    assert await store.member_ids(one.id) == sorted([alice.id, bob.id])
    assert await store.count_members(one.id) == 2
    assert await store.count_members(999) == 0
    assert await store.user_conversation_ids(alice.id) == sorted([one.id, two.id])
    assert await store.user_conversation_ids(dave.id) != await store.user_conversation_ids(bob.id)
    assert await store.contacts(alice.id) == {bob.id, carol.id}
    assert await store.contacts(dave.id) == set()


async def test_list_user_conversations(store: SqlStore) -> None:
    alice, bob, carol = await user(store, "alice"), await user(store, "bob"), await user(store, "c")
    quiet = await room(store, "quiet", alice, at=T0 + 50)
    busy = await room(store, "busy", alice, bob, carol, at=T0)
    direct, _ = await store.get_or_create_direct(alice.id, bob.id, T0 + 10)
    await send(store, busy, bob, "hi", "there", at=T0 + 100)
    await send(store, busy, alice, "mine", at=T0 + 101)
    await send(store, busy, carol, "yo", at=T0 + 102)
    await store.append_messages(
        [NewMessage(busy.id, None, "carol joined", kind=MessageKind.SYSTEM)], T0 + 103
    )
    await store.advance_cursors([CursorUpdate(busy.id, alice.id, read_seq=1)])

    summaries = await store.list_user_conversations(alice.id)
    assert [s.conversation.id for s in summaries] == [busy.id, quiet.id, direct.id]
    first = summaries[0]
    assert first.member_count == 3
    # Seqs 2 (bob) and 4 (carol) are unread; 3 is alice's own, 5 is a system message.
    assert first.unread == 2
    assert first.member.read_seq == 1
    assert first.member.user_id == alice.id
    assert first.conversation.last_seq == 5
    assert first.last_message is not None
    assert first.last_message.content == "carol joined"
    assert (summaries[1].member_count, summaries[1].unread, summaries[1].last_message) == (
        1,
        0,
        None,
    )
    assert summaries[2].member_count == 2

    bob_view = {s.conversation.id: s for s in await store.list_user_conversations(bob.id)}
    assert set(bob_view) == {busy.id, direct.id}
    assert bob_view[busy.id].unread == 2  # alice's and carol's, not his own
    assert await store.list_user_conversations(999) == []


async def test_last_seqs_of_many_conversations(store: SqlStore) -> None:
    alice = await user(store, "alice")
    rooms = [await room(store, f"r{i}", alice) for i in range(3)]
    for i, r in enumerate(rooms):
        for _ in range(i):
            await send(store, r, alice, "x")
    missing = rooms[-1].id + 100
    found = await store.last_seqs([r.id for r in rooms] + [missing])
    assert found == {rooms[0].id: 0, rooms[1].id: 1, rooms[2].id: 2}
    assert await store.last_seqs([]) == {}
