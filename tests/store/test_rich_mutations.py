"""The store's rich-message mutations on their own: edits, deletes, reactions, pins,
thread summaries and read cursors, edit history; what they number and what counts."""

from __future__ import annotations

from sqlalchemy import select

from palaver.core.models import Conversation, Message, MessageKind, NewMessage, Role, User
from palaver.store.base import CursorUpdate
from palaver.store.schema import message_edits, pins, reactions, thread_reads
from palaver.store.sql import SqlStore

from .helpers import DAY, T0, room, send, user


async def _last_seq(store: SqlStore, conversation: Conversation) -> int:
    found = await store.get_conversation(conversation.id)
    assert found is not None
    return found.last_seq


async def _message(store: SqlStore, message_id: int) -> Message:
    found = await store.get_message(message_id)
    assert found is not None
    return found


async def _setup(store: SqlStore) -> tuple[User, User, Conversation, Message]:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    [hello] = await send(store, general, alice, "hello")
    return alice, bob, general, hello.message


async def test_edit_replaces_text_keeps_history_and_takes_one_seq(store: SqlStore) -> None:
    alice, _, general, hello = await _setup(store)
    first = await store.edit_message(hello.id, alice.id, "hello, world", T0 + 10)
    assert first is not None
    assert (first.entry.kind, first.entry.ref_id, first.entry.seq) == (
        MessageKind.EDIT,
        hello.id,
        2,
    )
    assert first.entry.content == "hello, world"
    assert (first.target.content, first.target.edited_at) == ("hello, world", T0 + 10)
    assert await _last_seq(store, general) == 2
    second = await store.edit_message(hello.id, alice.id, "hello again", T0 + 20)
    assert second is not None
    assert second.entry.seq == 3
    stored = await _message(store, hello.id)
    assert (stored.content, stored.edited_at) == ("hello again", T0 + 20)
    history = await store.edit_history(hello.id)
    assert [(e.content, e.edited_at, e.editor_id) for e in history] == [
        ("hello", T0 + 10, alice.id),
        ("hello, world", T0 + 20, alice.id),
    ]
    # The entries are in the stream, in order, for resuming clients.
    stream = await store.get_messages(general.id, after_seq=1)
    assert [(m.seq, m.kind, m.ref_id) for m in stream] == [
        (2, MessageKind.EDIT, hello.id),
        (3, MessageKind.EDIT, hello.id),
    ]


async def test_edit_replaces_mentions_with_those_of_the_new_text(store: SqlStore) -> None:
    alice, _, _general, hello = await _setup(store)
    edited = await store.edit_message(hello.id, alice.id, "hello @bob", T0 + 1, ("bob",))
    assert edited is not None
    assert edited.entry.mentions == ("bob",)
    assert (await _message(store, hello.id)).mentions == ("bob",)
    await store.edit_message(hello.id, alice.id, "hello", T0 + 2)
    assert (await _message(store, hello.id)).mentions == ()


async def test_delete_tombstones_and_drops_reactions_and_pin(store: SqlStore) -> None:
    alice, bob, general, hello = await _setup(store)
    await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 1)
    await store.set_pin(hello.id, alice.id, True, T0 + 2)
    gone = await store.delete_message(hello.id, alice.id, T0 + 3)
    assert gone is not None
    assert (gone.entry.kind, gone.entry.seq, gone.entry.ref_id) == (
        MessageKind.DELETE,
        4,
        hello.id,
    )
    stored = await _message(store, hello.id)
    assert (stored.content, stored.deleted_at) == ("", T0 + 3)
    assert await store.get_reactions([hello.id]) == {}
    assert await store.pinned_ids(general.id) == []
    # Deleted is final: nothing more applies, and nothing takes a number.
    assert await store.delete_message(hello.id, alice.id, T0 + 4) is None
    assert await store.edit_message(hello.id, alice.id, "back", T0 + 4) is None
    assert await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 4) is None
    assert await store.set_pin(hello.id, alice.id, True, T0 + 4) is None
    assert await _last_seq(store, general) == 4


async def test_delete_empties_the_edit_entries_and_edit_history(store: SqlStore) -> None:
    alice, bob, general, hello = await _setup(store)
    [other] = await send(store, general, bob, "other")
    await store.edit_message(hello.id, alice.id, "hello @bob", T0 + 1, ("bob",))
    await store.edit_message(other.message.id, bob.id, "other, edited", T0 + 2)
    await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 3)
    await store.edit_message(hello.id, alice.id, "hello again", T0 + 4)
    assert await store.delete_message(hello.id, bob.id, T0 + 5) is not None

    stream = await store.get_messages(general.id)
    entries = [(m.seq, m.kind, m.ref_id, m.content, m.mentions) for m in stream[2:]]
    # Every entry keeps its place in the stream; those that held a text of the deleted
    # message are empty, the others are as they were.
    assert entries == [
        (3, MessageKind.EDIT, hello.id, "", ()),
        (4, MessageKind.EDIT, other.message.id, "other, edited", ()),
        (5, MessageKind.REACT, hello.id, "👍", ()),
        (6, MessageKind.EDIT, hello.id, "", ()),
        (7, MessageKind.DELETE, hello.id, "", ()),
    ]
    assert [m.sender_id for m in stream[2:]] == [alice.id, bob.id, bob.id, alice.id, bob.id]
    for entry in stream[2:]:
        assert await store.get_message(entry.id) == entry
    assert await store.edit_history(hello.id) == []
    assert [e.content for e in await store.edit_history(other.message.id)] == ["other"]
    async with store.engine.connect() as conn:
        texts = (await conn.execute(select(message_edits.c.content))).scalars().all()
    assert texts == ["other"]


async def test_reaction_toggle_is_idempotent_and_noops_take_no_seq(store: SqlStore) -> None:
    alice, bob, general, hello = await _setup(store)
    added = await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 1)
    assert added is not None
    assert (added.entry.kind, added.entry.content, added.entry.seq) == (
        MessageKind.REACT,
        "👍",
        2,
    )
    # Adding again changes nothing and numbers nothing.
    assert await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 2) is None
    assert await _last_seq(store, general) == 2
    await store.set_reaction(hello.id, alice.id, "👍", True, T0 + 3)
    await store.set_reaction(hello.id, alice.id, ":tada:", True, T0 + 4)
    assert await store.get_reactions([hello.id]) == {
        hello.id: [("👍", bob.id), ("👍", alice.id), (":tada:", alice.id)]
    }
    removed = await store.set_reaction(hello.id, bob.id, "👍", False, T0 + 5)
    assert removed is not None
    assert (removed.entry.kind, removed.entry.seq) == (MessageKind.UNREACT, 5)
    assert await store.set_reaction(hello.id, bob.id, "👍", False, T0 + 6) is None
    assert await _last_seq(store, general) == 5
    assert await store.get_reactions([hello.id]) == {
        hello.id: [("👍", alice.id), (":tada:", alice.id)]
    }


async def test_mutations_of_missing_messages_and_entries_take_no_seq(store: SqlStore) -> None:
    alice, bob, general, hello = await _setup(store)
    reacted = await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 1)
    assert reacted is not None
    entry_id = reacted.entry.id
    for target in (hello.id + 1000, entry_id):
        assert await store.edit_message(target, alice.id, "x", T0 + 2) is None
        assert await store.delete_message(target, alice.id, T0 + 2) is None
        assert await store.set_reaction(target, bob.id, "👍", True, T0 + 2) is None
        assert await store.set_pin(target, alice.id, True, T0 + 2) is None
    assert await _last_seq(store, general) == 2


async def test_pins_are_idempotent_and_listed_newest_first(store: SqlStore) -> None:
    alice, _, general, hello = await _setup(store)
    [later] = await send(store, general, alice, "later", at=T0 + 1)
    first = await store.set_pin(hello.id, alice.id, True, T0 + 2)
    assert first is not None
    assert (first.entry.kind, first.entry.seq) == (MessageKind.PIN, 3)
    assert await store.set_pin(hello.id, alice.id, True, T0 + 3) is None
    await store.set_pin(later.message.id, alice.id, True, T0 + 4)
    assert await store.pinned_ids(general.id) == [later.message.id, hello.id]
    unpinned = await store.set_pin(hello.id, alice.id, False, T0 + 5)
    assert unpinned is not None
    assert unpinned.entry.kind is MessageKind.UNPIN
    assert await store.set_pin(hello.id, alice.id, False, T0 + 6) is None
    assert await store.pinned_ids(general.id) == [later.message.id]
    assert await _last_seq(store, general) == 5


async def test_thread_summary_replies_and_read_cursor(store: SqlStore) -> None:
    alice, bob, general, root = await _setup(store)
    carol = await user(store, "carol")
    await store.add_member(general.id, carol.id, Role.MEMBER, T0)

    def reply(sender: User, text: str) -> NewMessage:
        return NewMessage(general.id, sender.id, text, thread_root_id=root.id)

    appended = await store.append_messages(
        [reply(bob, "one"), reply(carol, "two"), reply(alice, "three"), reply(bob, "four")],
        T0 + 10,
    )
    seqs = [a.message.seq for a in appended]
    assert seqs == [2, 3, 4, 5]
    # A reaction to a reply is an entry, not a reply.
    await store.set_reaction(appended[0].message.id, alice.id, "👍", True, T0 + 11)
    summaries = await store.thread_summaries([root.id, appended[0].message.id])
    assert list(summaries) == [root.id]
    summary = summaries[root.id]
    assert (summary.reply_count, summary.last_reply_seq, summary.last_reply_at) == (
        4,
        5,
        T0 + 10,
    )
    assert summary.repliers == (bob.id, alice.id, carol.id)
    replies = await store.thread_replies(root.id)
    assert [m.content for m in replies] == ["one", "two", "three", "four"]
    assert [m.content for m in await store.thread_replies(root.id, after_seq=3, limit=1)] == [
        "three"
    ]

    assert await store.thread_read_seq(alice.id, root.id) == 0
    assert await store.count_thread_unread(alice.id, root.id, 0) == 3  # not her own
    assert await store.thread_unread(alice.id, [root.id]) == {root.id: (0, 3)}
    assert await store.mark_thread_read(alice.id, root.id, 3) == 3
    # Forward only.
    assert await store.mark_thread_read(alice.id, root.id, 2) == 3
    assert await store.thread_read_seq(alice.id, root.id) == 3
    assert await store.count_thread_unread(alice.id, root.id, 3) == 1
    assert await store.thread_unread(alice.id, [root.id]) == {root.id: (3, 1)}
    assert await store.thread_unread(bob.id, [root.id]) == {root.id: (0, 2)}
    # Cursors are per user: reading does not read for anyone else.
    assert await store.thread_read_seq(bob.id, root.id) == 0
    assert await store.mark_thread_read(alice.id, root.id, 5) == 5
    assert await store.thread_unread(alice.id, [root.id]) == {root.id: (5, 0)}


async def test_counts_ignore_entries_and_thread_replies(store: SqlStore) -> None:
    alice, bob, general, hello = await _setup(store)
    await store.advance_cursors([CursorUpdate(general.id, bob.id, read_seq=1)])
    await store.set_reaction(hello.id, bob.id, "👍", True, T0 + 1)
    await store.set_pin(hello.id, alice.id, True, T0 + 2)
    await store.edit_message(hello.id, alice.id, "hi @bob", T0 + 3, ("bob",))
    await store.append_messages(
        [NewMessage(general.id, alice.id, "@bob in thread", thread_root_id=hello.id)],
        T0 + 4,
    )
    [summary] = await store.list_user_conversations(bob.id)
    assert summary.conversation.last_seq == 5
    # Bob read "hello" before the edit added "@bob": no unread message, no mention.
    assert (summary.unread, summary.mentions) == (0, 0)
    assert summary.last_message is not None
    assert summary.last_message.id == hello.id
    [mine] = await store.list_user_conversations(alice.id)
    assert (mine.unread, mine.mentions) == (0, 0)


async def test_edit_adding_a_mention_counts_while_the_message_is_unread(
    store: SqlStore,
) -> None:
    alice, bob, _general, hello = await _setup(store)
    [summary] = await store.list_user_conversations(bob.id)
    assert (summary.unread, summary.mentions) == (1, 0)
    await store.edit_message(hello.id, alice.id, "hello @bob", T0 + 1, ("bob",))
    [summary] = await store.list_user_conversations(bob.id)
    assert (summary.unread, summary.mentions) == (1, 1)
    await store.edit_message(hello.id, alice.id, "hello", T0 + 2)
    [summary] = await store.list_user_conversations(bob.id)
    assert (summary.unread, summary.mentions) == (1, 0)


async def test_purge_removes_reactions_pins_edits_and_thread_cursors(store: SqlStore) -> None:
    alice, bob, general, old = await _setup(store)
    await store.edit_message(old.id, alice.id, "old, edited", T0 + 1)
    await store.set_reaction(old.id, bob.id, "👍", True, T0 + 2)
    await store.set_pin(old.id, alice.id, True, T0 + 3)
    [reply] = await store.append_messages(
        [NewMessage(general.id, bob.id, "reply", thread_root_id=old.id)], T0 + 4
    )
    await store.mark_thread_read(alice.id, old.id, reply.message.seq)
    [kept] = await send(store, general, alice, "kept", at=T0 + 2 * DAY)
    await store.set_reaction(kept.message.id, bob.id, "👍", True, T0 + 2 * DAY)
    await store.set_pin(kept.message.id, alice.id, True, T0 + 2 * DAY)

    assert await store.purge_messages_before(T0 + DAY) == 5  # hello, 3 entries, reply
    assert await store.get_message(old.id) is None
    assert await store.edit_history(old.id) == []
    assert await store.get_reactions([old.id, kept.message.id]) == {
        kept.message.id: [("👍", bob.id)]
    }
    assert await store.pinned_ids(general.id) == [kept.message.id]
    async with store.engine.connect() as conn:
        for column in (message_edits.c.message_id, reactions.c.message_id, pins.c.message_id):
            rows = (await conn.execute(select(column).where(column == old.id))).all()
            assert rows == [], column.table.name
        assert (await conn.execute(thread_reads.select())).all() == []


async def test_thread_replies_page_back_from_a_before_cursor(store: SqlStore) -> None:
    alice, bob, general, root = await _setup(store)
    # Replies between top-level messages: pages hold the thread's replies only.
    batch: list[NewMessage] = []
    for n in range(7):
        batch.append(NewMessage(general.id, bob.id, f"reply {n}", thread_root_id=root.id))
        batch.append(NewMessage(general.id, alice.id, f"top {n}"))
    appended = await store.append_messages(batch, T0 + 10)
    seqs = [a.message.seq for a in appended if a.message.thread_root_id == root.id]
    end = await _last_seq(store, general) + 1

    async def contents(**cursors: int) -> list[str]:
        return [m.content for m in await store.thread_replies(root.id, **cursors)]

    # The newest page before the cursor, oldest first.
    assert await contents(before_seq=end, limit=3) == ["reply 4", "reply 5", "reply 6"]
    assert await contents(before_seq=seqs[4], limit=3) == ["reply 1", "reply 2", "reply 3"]
    assert await contents(before_seq=seqs[1], limit=3) == ["reply 0"]
    assert await contents(before_seq=seqs[0], limit=3) == []
    # With both cursors, the oldest page between them; with neither, the oldest page.
    assert await contents(after_seq=seqs[1], before_seq=seqs[5], limit=2) == [
        "reply 2",
        "reply 3",
    ]
    assert await contents(after_seq=seqs[4], before_seq=seqs[5], limit=2) == []
    assert await contents(limit=2) == ["reply 0", "reply 1"]
    # Paging back through the whole thread finds every reply once, in order.
    seen: list[str] = []
    before = end
    while page := await store.thread_replies(root.id, before_seq=before, limit=2):
        seen[:0] = [m.content for m in page]
        before = page[0].seq
    assert seen == [f"reply {n}" for n in range(7)]
