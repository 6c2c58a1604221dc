"""Search index contract: what the index finds, on SQLite (FTS5) and PostgreSQL (pg_trgm)."""

from __future__ import annotations

import asyncio

from sqlalchemy import text

from palaver.core.models import Conversation, MessageKind, NewMessage
from palaver.core.search import SearchFilter, normalize, parse_query
from palaver.services.search import SearchIndexer
from palaver.store.search import PostgresSearch, SearchStore, SqliteSearch
from palaver.store.sql import SqlStore

from .conftest import StoreFactory
from .helpers import T0, room, send, user


async def _find(
    store: SqlStore, q: str, conversations: list[Conversation], **filters: int | None
) -> list[str]:
    found = await store.search_messages(
        SearchFilter(
            query=parse_query(q), conversation_ids=[c.id for c in conversations], **filters
        )
    )
    return [m.content for m in found]


async def _index_all(store: SqlStore) -> int:
    total = 0
    while True:
        progress = await store.index_pending(now=T0 + 60_000)
        total += progress.indexed
        if progress.watermark == progress.start:
            return total


TEXTS = [
    "Déjà vu at the CAFÉ on Straße",
    "see https://example.com/docs/search?q=fts5 for details",
    "rename snake_case_name to CamelCaseName in palaver.store.search",
    "the report is in quarterly_report_2026.pdf",
    "100% sure about a_b",
]


async def test_finds_substrings_urls_identifiers_and_folds(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await send(store, general, alice, *TEXTS)
    assert await _find(store, "cafe", [general]) == []  # nothing is indexed yet
    assert await _index_all(store) == len(TEXTS)
    scope = [general]
    assert await _find(store, "cafe", scope) == [TEXTS[0]]
    assert await _find(store, "DEJA", scope) == [TEXTS[0]]
    assert await _find(store, "strasse", scope) == [TEXTS[0]]
    assert await _find(store, "example.com/docs", scope) == [TEXTS[1]]
    assert await _find(store, "q=fts5", scope) == [TEXTS[1]]
    assert await _find(store, "snake_case", scope) == [TEXTS[2]]
    assert await _find(store, "camelcase", scope) == [TEXTS[2]]
    assert await _find(store, "palaver.store.search", scope) == [TEXTS[2]]
    assert await _find(store, "report_2026.pdf", scope) == [TEXTS[3]]
    assert await _find(store, "uarter", scope) == [TEXTS[3]]  # inside a word
    # Every word must occur, in any order; LIKE wildcards are plain characters.
    assert await _find(store, "search docs", scope) == [TEXTS[1]]
    assert await _find(store, "search nothere", scope) == []
    assert await _find(store, "100%", scope) == [TEXTS[4]]
    assert await _find(store, "a_b sure", scope) == [TEXTS[4]]
    assert await _find(store, "ut%a", scope) == []
    assert await _find(store, "t_a", scope) == []
    # Words shorter than 3 characters narrow the match without using the index.
    assert await _find(store, "the vu", scope) == [TEXTS[0]]
    assert await _find(store, "the zz", scope) == []
    # A quote in the query is a character, not FTS5 syntax.
    assert await _find(store, 'the"', scope) == []


async def test_filters_order_and_paging(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    other = await room(store, "other", alice)
    await send(store, general, alice, "lunch at noon", at=T0)
    await send(store, general, bob, "lunch tomorrow", at=T0 + 10)
    await send(store, other, alice, "lunch elsewhere", at=T0 + 20)
    await store.append_messages(
        [NewMessage(general.id, None, "lunch notice", kind=MessageKind.SYSTEM)], T0 + 30
    )
    await _index_all(store)
    both = [general, other]
    assert await _find(store, "lunch", both) == [
        "lunch elsewhere",
        "lunch tomorrow",
        "lunch at noon",
    ]
    assert await _find(store, "lunch", [general]) == ["lunch tomorrow", "lunch at noon"]
    assert await _find(store, "lunch", both, sender_id=bob.id) == ["lunch tomorrow"]
    assert await _find(store, "lunch", both, after=T0 + 10) == [
        "lunch elsewhere",
        "lunch tomorrow",
    ]
    assert await _find(store, "lunch", both, before=T0 + 10) == ["lunch at noon"]
    assert await _find(store, "lunch", []) == []
    first = await store.search_messages(
        SearchFilter(query=parse_query("lunch"), conversation_ids=[general.id, other.id], limit=2)
    )
    rest = await store.search_messages(
        SearchFilter(
            query=parse_query("lunch"),
            conversation_ids=[general.id, other.id],
            before_id=first[-1].id,
        )
    )
    assert [m.content for m in first + rest] == [
        "lunch elsewhere",
        "lunch tomorrow",
        "lunch at noon",
    ]


async def test_indexing_is_idempotent_across_nodes(
    store: SqlStore, more_stores: StoreFactory
) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await send(store, general, alice, *(f"message number {i}" for i in range(30)))
    other = await more_stores()
    # Two nodes index the same rows; and a node that re-indexes from scratch (its
    # watermark reset) must not duplicate anything either.
    first = await store.index_pending(batch=20, now=T0 + 60_000)
    second = await other.index_pending(batch=20, now=T0 + 60_000)
    assert (first.indexed, second.indexed) == (20, 10)
    async with store.engine.begin() as conn:
        await conn.execute(text("UPDATE search_state SET last_id = 0"))
    await _index_all(other)
    found = await _find(store, "number", [general])
    assert len(found) == 20  # the default page size
    assert len(set(found)) == 20
    every = await store.search_messages(
        SearchFilter(query=parse_query("number"), conversation_ids=[general.id], limit=100)
    )
    assert len(every) == 30


async def test_watermark_waits_for_a_young_hole(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    sent = await send(store, general, alice, "first words", "second words", "third words")
    ids = [a.message.id for a in sent]
    # The middle message vanishes as if its transaction had not committed yet.
    async with store.engine.begin() as conn:
        middle = (
            (await conn.execute(text(f"SELECT * FROM messages WHERE id = {ids[1]}"))).one()._mapping
        )
        await conn.execute(text(f"DELETE FROM messages WHERE id = {ids[1]}"))
    progress = await store.index_pending(now=T0 + 1)
    assert progress.watermark == ids[0]
    async with store.engine.begin() as conn:
        columns = ", ".join(middle.keys())
        marks = ", ".join(f":{k}" for k in middle)
        await conn.execute(text(f"INSERT INTO messages ({columns}) VALUES ({marks})"), dict(middle))
    await store.index_pending(now=T0 + 1)
    assert await _find(store, "words", [general]) == ["third words", "second words", "first words"]
    assert (await store.index_pending(now=T0 + 1)).watermark == ids[2]
    # A hole that stays past the grace period is an id that will never come.
    later = await send(store, general, alice, "fourth words", "fifth words", at=T0 + 5)
    async with store.engine.begin() as conn:
        await conn.execute(text(f"DELETE FROM messages WHERE id = {later[0].message.id}"))
    assert (await store.index_pending(now=T0 + 6)).watermark == ids[2]
    assert (await store.index_pending(now=T0 + 60_000)).watermark == later[1].message.id


async def test_deleted_messages_leave_the_index(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    old = await send(store, general, alice, "ancient history", at=T0 - 10_000)
    kept = await send(store, general, alice, "recent history", at=T0)
    await _index_all(store)
    assert await store.purge_messages_before(T0 - 1) == 1
    assert await _find(store, "history", [general]) == ["recent history"]
    await store.unindex_messages([kept[0].message.id])
    assert await _find(store, "history", [general]) == []
    assert old[0].message.id < kept[0].message.id


async def test_edits_reindex_and_deletes_unindex(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    [first, second] = await send(store, general, alice, "meet at the old harbour", "keep me")
    await _index_all(store)

    async def entry(kind: MessageKind, ref: int, content: str = "") -> None:
        await store.append_messages(
            [NewMessage(general.id, alice.id, content, kind=kind, ref_id=ref)], T0 + 1
        )

    await entry(MessageKind.EDIT, first.message.id, "meet at the new marina")
    await _index_all(store)
    assert await _find(store, "harbour", [general]) == []
    found = await store.search_messages(
        SearchFilter(query=parse_query("marina"), conversation_ids=[general.id])
    )
    assert [m.id for m in found] == [first.message.id]
    # The edit entry itself is not a result: only the message it edits is.
    assert await _find(store, "meet", [general]) == ["meet at the old harbour"]
    # Edited then deleted within one pass: gone.
    await entry(MessageKind.EDIT, second.message.id, "keep me edited")
    await entry(MessageKind.DELETE, second.message.id)
    await entry(MessageKind.DELETE, first.message.id)
    await _index_all(store)
    assert await _find(store, "meet", [general]) == []
    assert await _find(store, "keep", [general]) == []


async def test_a_deleted_message_is_found_by_none_of_its_texts(store: SqlStore) -> None:
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    [sent] = await send(store, general, alice, "original wording")
    await _index_all(store)
    await store.edit_message(sent.message.id, alice.id, "edited wording", T0 + 1)
    await _index_all(store)
    await store.edit_message(sent.message.id, alice.id, "edited twice", T0 + 2)
    await _index_all(store)
    assert await _find(store, "twice", [general]) == ["edited twice"]
    await store.delete_message(sent.message.id, alice.id, T0 + 3)
    words = ("original", "wording", "edited", "twice")
    # Before the indexer reaches the delete, and after it.
    for _ in range(2):
        for word in words:
            assert await _find(store, word, [general]) == [], word
        await _index_all(store)
    async with store.engine.connect() as conn:
        left = (await conn.execute(text("SELECT count(*) FROM message_search"))).scalar()
    assert left == 0


async def test_newest_rows_first_then_the_index(store: SqlStore) -> None:
    """A search reads the newest messages of its conversations first and asks the index
    for older ones only when those held too few matches. With windows of a few rows,
    every conversation is "large" here but one: whatever way a page is found, it holds
    the same messages as a plain scan, newest first, page after page."""
    if isinstance(store, PostgresSearch):
        store.windows, store.min_per_conversation = (6, 12), 2
    if isinstance(store, SqliteSearch):
        store.room_window = 5
    alice, bob = await user(store, "alice"), await user(store, "bob")
    big = await room(store, "big", alice, bob)
    small = await room(store, "small", alice)
    elsewhere = await room(store, "elsewhere", bob)
    words = ["alpha", "beta", "gamma delta", "Alpha beta", "épsilon"]
    plan = [(big, alice if i % 3 else bob, words[i % 5] + f" n{i}") for i in range(40)]
    plan[7:7] = [(small, alice, "alpha small"), (small, alice, "beta small")]
    plan[20:20] = [(elsewhere, bob, f"alpha elsewhere {i}") for i in range(8)]
    # Longer than a btree entry may be: PostgreSQL reads it through its own index.
    plan.append((big, bob, "x" * 3000 + " alpha long"))
    plan.append((big, alice, "beta newest"))
    sent = []
    for offset, (conversation, sender, content) in enumerate(plan):
        [appended] = await send(store, conversation, sender, content, at=T0 + offset)
        sent.append(appended.message)
    await _index_all(store)
    # Deleted, and the indexer has not seen the delete yet: never a result.
    gone = next(m for m in reversed(sent) if m.conversation_id == big.id and "alpha" in m.content)
    async with store.engine.begin() as conn:
        await conn.execute(text(f"UPDATE messages SET deleted_at = 1 WHERE id = {gone.id}"))

    async def pages(
        q: str, scope: list[Conversation], limit: int, sender: int | None, dates: tuple[int, int]
    ) -> list[int]:
        ids: list[int] = []
        before: int | None = None
        while True:
            page = await store.search_messages(
                SearchFilter(
                    query=parse_query(q),
                    conversation_ids=[c.id for c in scope],
                    sender_id=sender,
                    after=dates[0],
                    before=dates[1],
                    before_id=before,
                    limit=limit,
                )
            )
            ids += [m.id for m in page]
            if len(page) < limit:
                return ids
            before = page[-1].id

    everything = (T0 - 1, T0 + 1000)
    # Sender and date filters: rows read but not passing them still count as read.
    filters = [(None, everything), (bob.id, everything), (None, (T0 + 12, T0 + 30))]
    for scope in ([big], [small], [big, small], [big, small, elsewhere]):
        for q in ("alpha", "beta", "delta gamma", "alpha beta", "epsilon", "nowhere"):
            for sender, dates in filters:
                terms = parse_query(q).all_terms
                expected = [
                    m.id
                    for m in reversed(sent)
                    if m.conversation_id in {c.id for c in scope}
                    and m.id != gone.id
                    and (sender is None or m.sender_id == sender)
                    and dates[0] <= m.created_at < dates[1]
                    and all(t in normalize(m.content) for t in terms)
                ]
                for limit in (1, 3, 50):
                    found = await pages(q, scope, limit, sender, dates)
                    assert found == expected, (q, limit, sender, dates)


async def test_long_terms_look_up_their_rarest_trigrams(store: SqlStore) -> None:
    """Once the index is sampled, a long term is looked up by its two rarest trigrams
    and checked whole: a message holding every trigram of the term but not the term
    is a candidate, never a result."""
    if isinstance(store, PostgresSearch):
        store.windows, store.min_per_conversation = (2,), 1  # the trigram index answers
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    other = await room(store, "other", alice)
    await send(store, general, alice, *(f"filler message {i} about the deploy" for i in range(30)))
    await send(store, general, alice, "see https://example.com/kalomi/42 now")
    await send(store, other, alice, "call ulanka_dekadevo() twice")
    # Every trigram of both terms, neither term.
    await send(store, general, alice, "example.co om/ka kalom lomi ulank anka_d _dekad adevo")
    await send(store, other, alice, "filler about the deploy")
    await _index_all(store)
    await store.refresh_search_stats()
    both = [general, other]
    assert await _find(store, "example.com/kalomi", both) == [
        "see https://example.com/kalomi/42 now"
    ]
    assert await _find(store, "ulanka_dekadevo", both) == ["call ulanka_dekadevo() twice"]
    assert await _find(store, "deploy", [other]) == ["filler about the deploy"]
    assert await _find(store, "kalomi 42", both) == ["see https://example.com/kalomi/42 now"]


async def test_the_indexer_samples_the_index(store: SqlStore) -> None:
    """The background indexer samples what the index holds (the trigram statistics
    long terms are looked up by) as soon as it starts, and every few minutes after."""
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    await send(store, general, alice, "zyxwvu once", "deploy twice", "deploy thrice")
    assert isinstance(store, SearchStore)
    assert store.gram_counts is None
    indexer = SearchIndexer(store, poll=0.01)
    indexer.start()
    try:
        async with asyncio.timeout(10):
            while store.gram_counts is None:
                await asyncio.sleep(0.01)
    finally:
        await indexer.stop()
    # Never seen first; "zyx" was seen once, the trigrams of "deploy" twice.
    assert store.gram_counts.rarest("deployzyx") == ["oyz", "yzy"]


async def test_an_id_is_never_handed_out_twice_so_a_message_after_a_purge_is_indexed(
    store: SqlStore,
) -> None:
    """Retention removes the newest message (everything was old): the next message gets
    a new id, past the indexer's watermark, and is found. (SQLite once handed out the
    largest id plus one, so the id came back and the indexer skipped it for good.)"""
    alice = await user(store, "alice")
    general = await room(store, "general", alice)
    [old] = await send(store, general, alice, "an old word")
    assert await _index_all(store) == 1
    assert await store.purge_messages_before(T0 + 1_000_000) == 1
    [new] = await send(store, general, alice, "a fresh word")
    assert new.message.id > old.message.id
    assert await _index_all(store) == 1
    assert await _find(store, "fresh", [general]) == ["a fresh word"]
