from __future__ import annotations

import asyncio
from collections.abc import Sequence
from functools import partial
from typing import Any

import pytest
from sqlalchemy import text

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Appended, Conversation, Message, MessageKind, NewMessage
from palaver.store.base import CursorUpdate
from palaver.store.sql import SqlStore
from palaver.store.sqlite import SqliteStore

from .helpers import T0, room, send, user


async def test_append_assigns_consecutive_seqs(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    first = await send(store, general, alice, "a", "b", at=T0 + 1)
    second = await send(store, general, alice, "c", at=T0 + 2)
    stored = [r.message for r in first + second]
    assert [m.seq for m in stored] == [1, 2, 3]
    assert [m.content for m in stored] == ["a", "b", "c"]
    assert not any(r.duplicate for r in first + second)
    assert stored[0].created_at == T0 + 1
    assert stored[2].created_at == T0 + 2
    assert stored[0].kind is MessageKind.TEXT
    assert stored[0].sender_id == alice.id
    assert len({m.id for m in stored}) == 3
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert (conversation.last_seq, conversation.last_message_at) == (3, T0 + 2)
    assert await store.append_messages([], T0) == []


async def test_batch_across_conversations(store: SqlStore) -> None:
    alice = await user(store, "alice")
    one, two = await room(store, "one", alice), await room(store, "two", alice)
    await send(store, two, alice, "earlier")
    results = await store.append_messages(
        [
            NewMessage(one.id, alice.id, "1a"),
            NewMessage(two.id, alice.id, "2a"),
            NewMessage(one.id, None, "1b", kind=MessageKind.SYSTEM),
            NewMessage(two.id, alice.id, "2b"),
        ],
        T0,
    )
    assert [(r.message.conversation_id, r.message.seq) for r in results] == [
        (one.id, 1),
        (two.id, 2),
        (one.id, 2),
        (two.id, 3),
    ]
    assert results[2].message.kind is MessageKind.SYSTEM
    assert results[2].message.sender_id is None
    assert [m.content for m in await store.get_messages(two.id)] == ["earlier", "2a", "2b"]


async def test_client_msg_id_dedup_across_calls(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [original] = await send(store, general, alice, "hello", client_ids=["c1"])
    [retry] = await send(store, general, alice, "hello again", at=T0 + 9, client_ids=["c1"])
    assert retry.duplicate
    assert retry.message == original.message
    # The same client id from another sender is another message.
    [other] = await send(store, general, bob, "hi", client_ids=["c1"])
    assert not other.duplicate
    assert other.message.seq == 2
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == 2


async def test_a_client_id_is_the_senders_within_one_conversation(store: SqlStore) -> None:
    """A client may number its ids per conversation: the same id in another
    conversation is another message, and a retry in each finds its own."""
    alice = await user(store, "alice")
    one, two = await room(store, "one", alice), await room(store, "two", alice)
    [first] = await send(store, one, alice, "to one", client_ids=["1"])
    [second] = await send(store, two, alice, "to two", client_ids=["1"])
    assert not second.duplicate
    assert (second.message.conversation_id, second.message.content) == (two.id, "to two")
    retries = await store.append_messages(
        [
            NewMessage(two.id, alice.id, "to two again", client_msg_id="1"),
            NewMessage(one.id, alice.id, "to one again", client_msg_id="1"),
            NewMessage(two.id, alice.id, "new in two", client_msg_id="2"),
            NewMessage(one.id, alice.id, "new in one", client_msg_id="2"),
        ],
        T0 + 5,
    )
    assert [r.duplicate for r in retries] == [True, True, False, False]
    assert retries[0].message == second.message
    assert retries[1].message == first.message
    assert [(r.message.conversation_id, r.message.seq) for r in retries[2:]] == [
        (two.id, 2),
        (one.id, 2),
    ]


async def test_client_msg_id_dedup_matches_sender_and_id_together(store: SqlStore) -> None:
    """One batch from several senders: a retry is matched on its own sender's id only,
    never on another sender's message that has the same id."""
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [alice_x] = await send(store, general, alice, "alice x", client_ids=["x"])
    [bob_y] = await send(store, general, bob, "bob y", client_ids=["y"])
    batch = [
        NewMessage(general.id, alice.id, "alice y", client_msg_id="y"),
        NewMessage(general.id, bob.id, "bob x", client_msg_id="x"),
        NewMessage(general.id, alice.id, "alice x again", client_msg_id="x"),
        NewMessage(general.id, bob.id, "bob y again", client_msg_id="y"),
    ]
    results = await store.append_messages(batch, T0 + 5)
    assert [r.duplicate for r in results] == [False, False, True, True]
    assert results[2].message == alice_x.message
    assert results[3].message == bob_y.message
    assert [r.message.seq for r in results[:2]] == [3, 4]


async def test_client_msg_id_dedup_within_a_batch(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await send(store, general, alice, "old", client_ids=["c0"])
    results = await send(
        store,
        general,
        alice,
        "a",
        "a again",
        "b",
        "old retried",
        "c",
        client_ids=["c1", "c1", None, "c0", None],
    )
    assert [r.duplicate for r in results] == [False, True, False, True, False]
    assert [r.message.seq for r in results] == [2, 2, 3, 1, 4]
    assert results[1].message == results[0].message
    assert results[3].message.content == "old"
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == 4
    assert [m.seq for m in await store.get_messages(general.id)] == [1, 2, 3, 4]


async def test_append_to_missing_conversation(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    with pytest.raises(PalaverError) as caught:
        await store.append_messages(
            [NewMessage(general.id, alice.id, "ok"), NewMessage(general.id + 100, alice.id, "x")],
            T0,
        )
    assert caught.value.code is ErrorCode.NOT_FOUND
    # Nothing of the batch committed and no sequence number was consumed.
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == 0
    assert [r.message.seq for r in await send(store, general, alice, "next")] == [1]


@pytest.mark.parametrize("path", ["engine", "portable"])
async def test_only_members_write(
    store: SqlStore, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever a node believes of a socket's conversations, the store refuses a new
    message from someone who is not (or no longer) a member, on the engine's own append
    path and the portable one."""
    if path == "portable":
        monkeypatch.setattr(store, "_append_batch", partial(SqlStore._append_batch, store))
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [kept] = await send(store, general, bob, "before", client_ids=["b1"])
    assert await store.remove_member(general.id, bob.id)
    for batch in (
        [NewMessage(general.id, bob.id, "after", client_msg_id="b2")],
        # A member's message in the same batch fails with it (the writer retries it alone).
        [NewMessage(general.id, alice.id, "hi"), NewMessage(general.id, bob.id, "after")],
    ):
        with pytest.raises(PalaverError) as caught:
            await store.append_messages(batch, T0)
        assert caught.value.code is ErrorCode.NOT_FOUND
    conversation = await store.get_conversation(general.id)
    assert conversation is not None
    assert conversation.last_seq == 1
    # A repeat of what they sent while a member is answered with the original.
    [again] = await send(store, general, bob, "before", client_ids=["b1"])
    assert again.duplicate
    assert again.message == kept.message
    # System notices have no sender and need no membership.
    notice = NewMessage(general.id, None, "bob left", kind=MessageKind.SYSTEM)
    stored = await store.append_messages([notice, NewMessage(general.id, alice.id, "x")], T0)
    assert [(a.message.seq, a.message.sender_id) for a in stored] == [(2, None), (3, alice.id)]


async def test_get_messages_pagination(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general, other = await room(store, "general", alice), await room(store, "other", alice)
    await send(store, general, alice, *(f"m{i}" for i in range(1, 11)))
    await send(store, other, alice, "elsewhere")

    def seqs(found: list[Message]) -> list[int]:
        return [m.seq for m in found]

    assert seqs(await store.get_messages(general.id)) == list(range(1, 11))
    assert seqs(await store.get_messages(general.id, limit=3)) == [8, 9, 10]
    assert seqs(await store.get_messages(general.id, before_seq=8, limit=3)) == [5, 6, 7]
    assert seqs(await store.get_messages(general.id, before_seq=3)) == [1, 2]
    assert seqs(await store.get_messages(general.id, after_seq=0, limit=3)) == [1, 2, 3]
    assert seqs(await store.get_messages(general.id, after_seq=7)) == [8, 9, 10]
    assert seqs(await store.get_messages(general.id, after_seq=10)) == []
    assert seqs(await store.get_messages(general.id, after_seq=2, before_seq=6)) == [3, 4, 5]
    assert await store.get_messages(general.id + 100) == []


async def test_get_message(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    [sent] = await send(store, general, alice, "hello", client_ids=["c1"])
    assert await store.get_message(sent.message.id) == sent.message
    assert sent.message.client_msg_id == "c1"
    assert await store.get_message(sent.message.id + 100) is None


async def test_advance_cursors(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    await send(store, general, alice, *"abcde")

    [moved] = await store.advance_cursors([CursorUpdate(general.id, bob.id, delivered_seq=4)])
    assert (moved.read_seq, moved.delivered_seq) == (0, 4)
    # Reading implies delivery; never past last_seq.
    [moved] = await store.advance_cursors([CursorUpdate(general.id, bob.id, read_seq=99)])
    assert (moved.read_seq, moved.delivered_seq) == (5, 5)
    # Backwards is a no-op and is not reported.
    assert await store.advance_cursors([CursorUpdate(general.id, bob.id, 1, 1)]) == []
    member = await store.get_member(general.id, bob.id)
    assert member is not None
    assert (member.read_seq, member.delivered_seq) == (5, 5)


async def test_advance_cursors_batch(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    one, two = await room(store, "one", alice, bob), await room(store, "two", alice)
    await send(store, one, alice, *"abc")
    await send(store, two, alice, *"xy")
    changed = await store.advance_cursors(
        [
            CursorUpdate(one.id, bob.id, read_seq=1),
            CursorUpdate(one.id, bob.id, read_seq=2, delivered_seq=1),
            CursorUpdate(two.id, alice.id, delivered_seq=2),
            CursorUpdate(two.id, bob.id, read_seq=2),  # not a member: ignored
            CursorUpdate(one.id, alice.id),  # nothing to move
        ]
    )
    assert sorted((m.conversation_id, m.user_id, m.read_seq, m.delivered_seq) for m in changed) == [
        (one.id, bob.id, 2, 2),
        (two.id, alice.id, 0, 2),
    ]
    assert await store.get_member(two.id, bob.id) is None
    assert await store.advance_cursors([]) == []


async def test_purge_messages_before(store: SqlStore) -> None:
    alice = await user(store, "alice")
    one, two, three = [await room(store, n, alice) for n in ("one", "two", "three")]
    await send(store, one, alice, "1", "2", at=T0)
    await send(store, one, alice, "3", at=T0 + 10)
    await send(store, two, alice, "old", at=T0)
    await send(store, three, alice, "new", at=T0 + 10)

    assert await store.purge_messages_before(T0 + 5) == 3
    after = {c.id: await store.get_conversation(c.id) for c in (one, two, three)}
    assert [(c.min_seq, c.last_seq) for c in after.values() if c] == [(3, 3), (2, 1), (1, 1)]
    assert [m.content for m in await store.get_messages(one.id)] == ["3"]
    assert await store.get_messages(two.id) == []
    assert await store.purge_messages_before(T0 + 5) == 0
    # Sequences carry on after the purged range.
    assert [r.message.seq for r in await send(store, two, alice, "again")] == [2]
    [summary] = [
        s for s in await store.list_user_conversations(alice.id) if s.conversation.id == one.id
    ]
    assert summary.last_message is not None
    assert summary.last_message.content == "3"


async def test_append_retries_once_after_losing_a_race(
    store: SqlStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another node stored the client id after our lookup: the retry returns its copy."""
    alice = await user(store, "alice")
    one = await room(store, "one", alice)
    attempts = 0

    def count(name: str, _seconds: float) -> None:
        nonlocal attempts
        attempts += name == "append_messages"

    if isinstance(store, SqliteStore):
        [original] = await send(store, one, alice, "first", client_ids=["c1"])
        lookup = store._find_client_ids_sync
        calls = 0

        def blind_first_time(db: Any, batch: Sequence[NewMessage]) -> Any:
            nonlocal calls
            calls += 1
            return {} if calls == 1 else lookup(db, batch)

        monkeypatch.setattr(store, "_find_client_ids_sync", blind_first_time)
        store.on_txn = count
        [retried] = await send(store, one, alice, "again", client_ids=["c1"])
    else:
        # A real race: the original is inserted by another connection that commits
        # only once our statement has looked (and waits for the conversation's lock).
        async with store.engine.connect() as other:
            await other.execute(
                text(
                    "INSERT INTO messages (conversation_id, seq, sender_id, kind, content, "
                    "client_msg_id, created_at) VALUES (:c, 1, :s, 'text', 'first', 'c1', :t)"
                ),
                {"c": one.id, "s": alice.id, "t": T0},
            )
            await other.execute(
                text("UPDATE conversations SET last_seq = 1 WHERE id = :c"), {"c": one.id}
            )
            store.on_txn = count
            sending = asyncio.create_task(send(store, one, alice, "again", client_ids=["c1"]))
            await _until_a_backend_waits_for_a_lock(store)
            await other.commit()
        [retried] = await sending
        [original_message] = await store.get_messages(one.id)
        original = Appended(original_message, duplicate=False)
    assert attempts == 2
    assert retried.duplicate
    assert retried.message == original.message
    conversation = await store.get_conversation(one.id)
    assert conversation is not None
    assert conversation.last_seq == 1


async def _until_a_backend_waits_for_a_lock(store: SqlStore) -> None:
    async with store.engine.connect() as conn:
        for _ in range(500):
            waiting = await conn.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
            )
            await conn.rollback()
            if waiting:
                return
            await asyncio.sleep(0.01)
    raise AssertionError("the append never waited for the other transaction")


@pytest.mark.parametrize("path", ["engine", "portable"])
async def test_append_mixed_batch(
    store: SqlStore, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored duplicates, repeats within the batch, messages without a sender or a
    client id, several conversations: one result per input, in order. Both the
    engine's own append path and the portable SQLAlchemy one (SQLite in memory)."""
    if path == "portable":
        monkeypatch.setattr(store, "_append_batch", partial(SqlStore._append_batch, store))
    alice, bob = await user(store, "alice"), await user(store, "bob")
    one, two = await room(store, "one", alice, bob), await room(store, "two", alice, bob)
    [stored] = await send(store, two, bob, "stored", client_ids=["s"])
    batch = [
        NewMessage(one.id, alice.id, "a1", client_msg_id="a"),
        NewMessage(two.id, bob.id, "s again", client_msg_id="s"),  # stored
        NewMessage(two.id, alice.id, "plain"),
        NewMessage(one.id, alice.id, "a1 again", client_msg_id="a"),  # repeat
        NewMessage(one.id, None, "notice", kind=MessageKind.SYSTEM, client_msg_id="a"),
        NewMessage(two.id, bob.id, "s third", client_msg_id="s"),  # stored, repeated
        NewMessage(one.id, bob.id, "b1", client_msg_id="a"),  # another sender's "a"
        NewMessage(two.id, alice.id, "a in two", client_msg_id="a"),  # another conversation's
    ]
    results = await store.append_messages(batch, T0 + 5)
    summary = [
        (r.message.conversation_id, r.message.seq, r.message.content, r.duplicate) for r in results
    ]
    assert summary == [
        (one.id, 1, "a1", False),
        (two.id, 1, "stored", True),
        (two.id, 2, "plain", False),
        (one.id, 1, "a1", True),
        (one.id, 2, "notice", False),
        (two.id, 1, "stored", True),
        (one.id, 3, "b1", False),
        (two.id, 3, "a in two", False),
    ]
    assert results[1].message == stored.message
    assert results[4].message.sender_id is None
    assert results[4].message.kind is MessageKind.SYSTEM
    assert results[4].message.client_msg_id == "a"
    fresh = [r.message for r in results if not r.duplicate]
    assert all(m.created_at == T0 + 5 for m in fresh)
    for message in fresh:
        assert await store.get_message(message.id) == message
    assert [(c.last_seq, c.last_message_at) for c in await _conversations(store, one, two)] == [
        (3, T0 + 5),
        (3, T0 + 5),
    ]


async def test_append_only_duplicates_leaves_the_conversation(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    [original] = await send(store, general, alice, "hi", at=T0, client_ids=["c1"])
    [again] = await send(store, general, alice, "hi", at=T0 + 9, client_ids=["c1"])
    assert again == Appended(original.message, duplicate=True)
    [conversation] = await _conversations(store, general)
    assert (conversation.last_seq, conversation.last_message_at) == (1, T0)


async def test_append_large_batch(store: SqlStore) -> None:
    """More messages and client ids than one IN list takes."""
    alice = await user(store, "alice")
    rooms = [await room(store, f"r{i}", alice) for i in range(3)]
    batch = [
        NewMessage(rooms[i % 3].id, alice.id, str(i), client_msg_id=f"c{i}") for i in range(1200)
    ]
    first = await store.append_messages(batch, T0)
    assert [r.message.seq for r in first] == [i // 3 + 1 for i in range(1200)]
    again = await store.append_messages(batch[::-1], T0)
    assert all(r.duplicate for r in again)
    assert [r.message for r in again] == [r.message for r in first][::-1]
    assert [c.last_seq for c in await _conversations(store, *rooms)] == [400, 400, 400]


async def _conversations(store: SqlStore, *rooms: Conversation) -> list[Conversation]:
    found = [await store.get_conversation(r.id) for r in rooms]
    assert all(c is not None for c in found)
    return [c for c in found if c is not None]
