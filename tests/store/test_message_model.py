"""Reply, thread, attachment and mention columns through every append path, and what
the conversation list counts (only messages proper, never mutation entries)."""

from __future__ import annotations

from palaver.core.models import MENTION_ROOM, MessageKind, NewMessage
from palaver.store.sql import SqlStore

from .helpers import T0, room, send, user

PHOTO = {"id": "u1", "name": "cat.png", "type": "image/png", "size": 12}


async def test_rich_columns_round_trip(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [root] = await send(store, general, alice, "root")
    rich = NewMessage(
        general.id,
        bob.id,
        "@alice look",
        client_msg_id="r1",
        reply_to_id=root.message.id,
        thread_root_id=root.message.id,
        attachments=(PHOTO,),
        mentions=("alice",),
    )
    [first] = await store.append_messages([rich], T0 + 1)
    # The duplicate answer is read back from the database by the engine's fast path.
    [again] = await store.append_messages([rich], T0 + 2)
    assert again.duplicate
    for message in (first.message, again.message):
        assert message.reply_to_id == root.message.id
        assert message.thread_root_id == root.message.id
        assert message.attachments == (PHOTO,)
        assert message.mentions == ("alice",)
        assert (message.ref_id, message.edited_at) == (None, None)
    [stored] = await store.get_messages(general.id, after_seq=1)
    assert stored == first.message
    plain = await store.get_message(root.message.id)
    assert plain is not None
    assert (plain.attachments, plain.mentions, plain.thread_root_id) == ((), (), None)


async def test_mixed_batch_of_plain_and_rich(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    results = await store.append_messages(
        [
            NewMessage(general.id, alice.id, "plain", client_msg_id="p"),
            NewMessage(general.id, alice.id, "@room hi", mentions=(MENTION_ROOM,)),
        ],
        T0,
    )
    assert [r.message.seq for r in results] == [1, 2]
    stored = await store.get_messages(general.id)
    assert [m.mentions for m in stored] == [(), (MENTION_ROOM,)]


async def test_summary_counts_messages_and_mentions_only(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [root] = await send(store, general, bob, "hello")
    await store.append_messages(
        [
            NewMessage(general.id, bob.id, "hey @alice", mentions=("alice",)),
            NewMessage(general.id, bob.id, "@room", mentions=(MENTION_ROOM,)),
            NewMessage(general.id, bob.id, "@bob talks to himself", mentions=("bob",)),
            # A thread reply mentioning alice: counted in the thread, not here.
            NewMessage(
                general.id,
                bob.id,
                "in thread @alice",
                thread_root_id=root.message.id,
                mentions=("alice",),
            ),
            # Mutation entries take sequence numbers but are not messages.
            NewMessage(general.id, bob.id, "edited", kind=MessageKind.EDIT, ref_id=root.message.id),
            NewMessage(general.id, bob.id, "👍", kind=MessageKind.REACT, ref_id=root.message.id),
        ],
        T0 + 1,
    )
    [summary] = await store.list_user_conversations(alice.id)
    assert summary.conversation.last_seq == 7
    assert summary.unread == 4
    assert summary.mentions == 2
    assert summary.last_message is not None
    assert summary.last_message.content == "@bob talks to himself"
    [own] = await store.list_user_conversations(bob.id)
    assert (own.unread, own.mentions) == (0, 0)
