"""Per-user quotas on costly requests (uploads, exports, searches): a token bucket per
user and kind, shared by every node through the broker.

Sends have their own limit in :class:`~palaver.services.messaging.MessagingService`,
which keeps a local bucket while the broker is down: chat must go on and a flood still
be refused. These requests are bounded by their own limits too (sizes, pages), so while
the broker is unreachable they go on unlimited rather than fail.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from palaver.broker.base import Broker, BrokerUnavailable
from palaver.core.errors import ErrorCode, PalaverError


@dataclass(frozen=True, slots=True)
class Quota:
    """``burst`` requests, then ``per_second``; ``scope`` names the bucket (with the
    user id) and the ``rate_limited_total`` metric's label."""

    scope: str
    burst: int
    per_second: float
    refusal: str


class Quotas:
    """Takes a request's token or refuses it with ``RATE_LIMITED`` and the wait."""

    def __init__(self, broker: Broker, on_refused: Callable[[str], None] | None = None) -> None:
        self.broker = broker
        self._on_refused = on_refused

    async def take(self, quota: Quota, user_id: int) -> None:
        try:
            wait = await self.broker.take_token(
                f"{quota.scope}:{user_id}", quota.burst, quota.per_second
            )
        except BrokerUnavailable:
            return
        if wait > 0:
            if self._on_refused is not None:
                self._on_refused(quota.scope)
            raise PalaverError(ErrorCode.RATE_LIMITED, quota.refusal, retry_after=round(wait, 3))
