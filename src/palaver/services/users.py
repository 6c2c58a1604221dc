"""A small read-through cache of users, for naming senders without a query per message."""

from __future__ import annotations

import time
from collections import OrderedDict

from palaver.core.models import User
from palaver.store.base import Store

# Display names change rarely; a minute of staleness in message frames is acceptable.
TTL_SECONDS = 60.0
MAX_ENTRIES = 50_000


class UserCache:
    """Users by id, each kept for :data:`TTL_SECONDS`, least recently used evicted."""

    def __init__(self, store: Store, *, ttl: float = TTL_SECONDS) -> None:
        self._store = store
        self._ttl = ttl
        self._entries: OrderedDict[int, tuple[float, User]] = OrderedDict()

    async def get(self, user_id: int) -> User | None:
        entry = self._entries.get(user_id)
        now = time.monotonic()
        if entry is not None and now - entry[0] < self._ttl:
            self._entries.move_to_end(user_id)
            return entry[1]
        user = await self._store.get_user(user_id)
        if user is not None:
            self.put(user)
        return user

    def put(self, user: User) -> None:
        self._entries[user.id] = (time.monotonic(), user)
        self._entries.move_to_end(user.id)
        while len(self._entries) > MAX_ENTRIES:
            self._entries.popitem(last=False)

    def forget(self, user_id: int) -> None:
        self._entries.pop(user_id, None)
