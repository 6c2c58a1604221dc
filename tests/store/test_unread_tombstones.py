"""Deleted messages (tombstones) count neither as unread nor as mentions, in the
conversation list and in threads."""

from __future__ import annotations

from palaver.core.models import NewMessage
from palaver.store.sql import SqlStore

from .helpers import T0, room, send, user


async def test_a_message_deleted_after_the_cursor_is_not_unread(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    kept, gone = await send(store, general, alice, "kept", "gone @bob")
    # The raw append path does not parse mentions: the edit below records one.
    await store.edit_message(gone.message.id, alice.id, "gone @bob", T0 + 1, ("bob",))
    [summary] = await store.list_user_conversations(bob.id)
    assert (summary.unread, summary.mentions) == (2, 1)
    assert await store.delete_message(gone.message.id, alice.id, T0 + 2) is not None
    [summary] = await store.list_user_conversations(bob.id)
    assert (summary.unread, summary.mentions) == (1, 0)
    assert kept.message.seq == 1


async def test_a_deleted_thread_reply_is_not_unread(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [root] = await send(store, general, alice, "root")
    replies = await store.append_messages(
        [
            NewMessage(general.id, alice.id, "one", thread_root_id=root.message.id),
            NewMessage(general.id, alice.id, "two", thread_root_id=root.message.id),
        ],
        T0 + 1,
    )
    assert await store.count_thread_unread(bob.id, root.message.id, 0) == 2
    assert await store.delete_message(replies[1].message.id, alice.id, T0 + 2) is not None
    assert await store.count_thread_unread(bob.id, root.message.id, 0) == 1
    assert await store.thread_unread(bob.id, [root.message.id]) == {root.message.id: (0, 1)}
