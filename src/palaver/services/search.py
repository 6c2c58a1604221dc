"""Full-text search over the messages of a user's conversations, and the indexer that
keeps the index up to date off the send path.

A send is acknowledged once its message is committed; the index follows within a
fraction of a second: the group-commit writer wakes this node's indexer after each
commit, and a short poll finds messages other nodes committed.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from palaver.core import events, protocol
from palaver.core.errors import not_found
from palaver.core.search import (
    SearchFilter,
    SearchHit,
    SearchPage,
    clamp_limit,
    highlight,
    hit_dict,
    parse_cursor,
    parse_query,
    snippet,
)
from palaver.services.quotas import Quota, Quotas
from palaver.store.base import Store, StoreUnavailable

log = structlog.get_logger(__name__)

#: Searches per user, across every node: a burst of 30, then three a second. Far above
#: what typing in a search box asks (the web client waits 250 ms after each key), and a
#: bound on what one account can make the database read (a term no index helps with
#: reads every message of the user's conversations).
SEARCH_QUOTA = Quota("search", 30, 3.0, "too many searches; slow down")
#: How often an idle indexer looks for messages committed by other nodes.
POLL_SECONDS = 0.5
#: How often the indexer re-samples the index for the trigram statistics searches
#: are planned by (common and rare trigrams change slowly).
STATS_SECONDS = 600.0
#: After a local commit, wait this long for more before indexing: one pass then covers
#: a burst, and on SQLite the indexer takes the write lock a few times a second at most.
#: Each pass costs a few transactions whatever its size, and on SQLite each one writes
#: an FTS5 segment that later merges cost again: at 0.05 s a busy node spent about a
#: tenth of its CPU on indexing. At 0.5 s a message is still searchable within a second.
WAKE_DELAY = 0.5


class SearchService:
    """Searches what a user may read: the conversations they are a member of now."""

    def __init__(self, store: Store, quotas: Quotas | None = None) -> None:
        self.store = store
        self.quotas = quotas

    async def search(
        self,
        user_id: int,
        q: object,
        *,
        conversation_id: int | None = None,
        sender_id: int | None = None,
        after: int | None = None,
        before: int | None = None,
        limit: int | None = None,
        cursor: object = None,
    ) -> SearchPage:
        """A page of matches, newest first. ``QUERY_TOO_SHORT`` when no word of ``q`` has
        3 characters; ``NOT_FOUND`` for a ``conversation_id`` the user is not in;
        ``RATE_LIMITED`` past :data:`SEARCH_QUOTA`."""
        query = parse_query(q)
        before_id = parse_cursor(cursor)
        size = clamp_limit(limit)
        if self.quotas is not None:
            await self.quotas.take(SEARCH_QUOTA, user_id)
        if conversation_id is not None:
            if await self.store.get_member(conversation_id, user_id) is None:
                raise not_found()
            scope = [conversation_id]
        else:
            scope = await self.store.user_conversation_ids(user_id)
        found = await self.store.search_messages(
            SearchFilter(
                query=query,
                conversation_ids=scope,
                sender_id=sender_id,
                after=after,
                before=before,
                before_id=before_id,
                limit=size + 1,
            )
        )
        more = len(found) > size
        found = found[:size]
        senders = await self.store.get_users(
            {m.sender_id for m in found if m.sender_id is not None}
        )
        hits = []
        for message in found:
            ranges = highlight(message.content, query.all_terms)
            hits.append(
                SearchHit(
                    message=message,
                    sender=senders.get(message.sender_id) if message.sender_id else None,
                    highlights=ranges,
                    snippet=snippet(message.content, ranges),
                )
            )
        return SearchPage(hits=hits, next_cursor=str(found[-1].id) if more else None)


async def search_frame(
    service: SearchService, user_id: int, command: protocol.Search
) -> dict[str, Any]:
    """Run a socket's ``search`` command; the ``search_results`` frame echoes its id."""
    page = await service.search(
        user_id,
        command.q,
        conversation_id=command.conversation_id,
        sender_id=command.sender_id,
        after=command.after,
        before=command.before,
        limit=command.limit,
        cursor=command.cursor,
    )
    return events.reply(
        command.id,
        "search_results",
        results=[hit_dict(h) for h in page.hits],
        next_cursor=page.next_cursor,
    )


class SearchIndexer:
    """This node's background indexer: a pass after local commits and every
    ``poll`` seconds. Several nodes indexing one database is safe (passes are
    idempotent and take turns on the watermark)."""

    def __init__(self, store: Store, *, poll: float = POLL_SECONDS) -> None:
        self._store = store
        self._poll = poll
        # Made in start(): an event belongs to the loop that first waits on it.
        self._wake: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._stats_at: float | None = None

    def wake(self) -> None:
        """Something was committed here: index soon. Cheap and safe on the send path."""
        if self._wake is not None:
            self._wake.set()

    @property
    def running(self) -> bool:
        return self._task is not None

    def start(self) -> None:
        if self._task is None:
            self._wake = asyncio.Event()
            self._task = asyncio.create_task(self._run(), name="palaver.search-indexer")

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def run_once(self) -> int:
        """Index everything waiting; return how many messages were indexed."""
        total = 0
        while True:
            progress = await self._store.index_pending()
            total += progress.indexed
            # Unmoved: nothing left, or only a hole that may still be an uncommitted
            # message (the next poll looks again).
            if progress.watermark == progress.start:
                return total

    async def _run(self) -> None:
        wake = self._wake
        assert wake is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(wake.wait(), self._poll)
                await asyncio.sleep(WAKE_DELAY)
            wake.clear()
            try:
                if await self._store.search_backlog():
                    await self.run_once()
                now = time.monotonic()
                if self._stats_at is None or now - self._stats_at >= STATS_SECONDS:
                    self._stats_at = now
                    await self._store.refresh_search_stats()
            except StoreUnavailable as exc:
                log.warning("search.index_failed", error=str(exc))
            except Exception:
                # The index can always be rebuilt from the watermark: never let a bad
                # row stop the indexer for good.
                log.exception("search.index_failed")
