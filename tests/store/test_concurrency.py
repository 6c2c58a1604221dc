"""Gapless sequences and exactly-once storage under concurrent writers."""

from __future__ import annotations

import asyncio

from palaver.core.models import Appended, NewMessage, Role
from palaver.store.sql import SqlStore

from .conftest import StoreFactory
from .helpers import T0, room, user

WRITERS = 4  # stores, each standing in for a separate process
TASKS = 4  # concurrent senders per store
SENDS = 8  # appends per sender, alternating batches of one and two


async def test_sequences_are_gapless(store: SqlStore, more_stores: StoreFactory) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    stores = [store, *[await more_stores() for _ in range(WRITERS - 1)]]

    async def sender(s: SqlStore, task: int) -> list[Appended]:
        results: list[Appended] = []
        for i in range(SENDS):
            batch = [
                NewMessage(general.id, alice.id, f"{task}-{i}-{j}", client_msg_id=f"{task}-{i}-{j}")
                for j in range(1 + i % 2)
            ]
            results += await s.append_messages(batch, T0)
        return results

    runs = await asyncio.gather(
        *(sender(s, n * TASKS + t) for n, s in enumerate(stores) for t in range(TASKS))
    )
    total = WRITERS * TASKS * (SENDS + SENDS // 2)
    seqs = sorted(r.message.seq for run in runs for r in run)
    assert seqs == list(range(1, total + 1))
    for run in runs:  # each sender's messages keep its order
        assert [r.message.seq for r in run] == sorted(r.message.seq for r in run)
    stored = await store.get_messages(general.id, after_seq=0, limit=total + 10)
    assert [m.seq for m in stored] == list(range(1, total + 1))
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == total


async def test_concurrent_retries_store_one_message(
    store: SqlStore, more_stores: StoreFactory
) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    stores = [store, *[await more_stores() for _ in range(WRITERS - 1)]]
    for round_ in range(5):
        batch = [NewMessage(general.id, alice.id, "hi", client_msg_id=f"retry-{round_}")]
        results = await asyncio.gather(*(s.append_messages(batch, T0) for s in stores))
        flat = [r for result in results for r in result]
        assert len({r.message.id for r in flat}) == 1
        assert sum(not r.duplicate for r in flat) == 1
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == 5


async def test_reads_alongside_writes(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)

    async def write() -> None:
        for i in range(20):
            await store.append_messages([NewMessage(general.id, alice.id, str(i))], T0)

    async def read() -> None:
        for _ in range(20):
            found = await store.get_messages(general.id, limit=100)
            assert [m.seq for m in found] == list(range(1, len(found) + 1))

    await asyncio.gather(write(), read(), read())


async def test_departures_at_once_leave_one_owner(
    store: SqlStore, more_stores: StoreFactory
) -> None:
    """The owner and the admins next in line leave together, each through a store of
    its own: whoever stays ends up with exactly one owner, the most senior of them."""
    stores = [store, *[await more_stores() for _ in range(WRITERS - 1)]]
    people = [await user(store, f"u{i}") for i in range(WRITERS + 2)]
    for round_ in range(5):
        general = await room(store, f"general-{round_}", people[0])
        for at, member in enumerate(people[1:], start=1):
            await store.add_member(general.id, member.id, Role.MEMBER, T0 + at)
        for admin in people[1:WRITERS]:
            await store.set_member_role(general.id, admin.id, Role.ADMIN)
        leavers = people[:WRITERS]
        await asyncio.gather(
            *(s.leave_conversation(general.id, u.id) for s, u in zip(stores, leavers, strict=True))
        )
        members = await store.list_members(general.id)
        assert {m.user_id: m.role for m in members} == {
            people[WRITERS].id: Role.OWNER,
            people[WRITERS + 1].id: Role.MEMBER,
        }
