"""Rate-limit arithmetic: token buckets and fixed-window counters.

Pure state machines over a caller-supplied clock (any monotonic float in seconds), so the
same arithmetic serves the in-process broker, mirrors the Redis Lua scripts and is tested
without sleeping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

# A caller that sleeps exactly the advised wait must be let through, but with clocks
# around 1e6 s (uptime) the refill ``elapsed * rate`` can land a hair under one token.
# A wait under a microsecond is below any sleep's resolution, so it counts as none.
WAIT_EPSILON = 1e-6


def check_bucket_params(burst: int, per_second: float) -> None:
    """Raise :class:`ValueError` unless ``burst >= 1`` and ``per_second > 0``."""
    if burst < 1:
        raise ValueError(f"burst must be at least 1, got {burst}")
    if not (per_second > 0 and math.isfinite(per_second)):
        raise ValueError(f"per_second must be positive and finite, got {per_second}")


def check_limit(limit: int) -> None:
    """Raise :class:`ValueError` unless ``limit >= 1``."""
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")


@dataclass
class TokenBucket:
    """A bucket of at most ``burst`` tokens refilled at ``per_second`` tokens a second.

    ``tokens`` is the level at time ``updated``. Create a full bucket with
    :meth:`full`, then call :meth:`take` for each request.
    """

    burst: int
    per_second: float
    tokens: float
    updated: float

    def __post_init__(self) -> None:
        check_bucket_params(self.burst, self.per_second)

    @classmethod
    def full(cls, burst: int, per_second: float, now: float) -> TokenBucket:
        """A bucket holding ``burst`` tokens at time ``now``."""
        return cls(burst=burst, per_second=per_second, tokens=float(burst), updated=now)

    def level(self, now: float) -> float:
        """The number of tokens at ``now`` (without taking any)."""
        # A clock that steps back (another node's, or a reset) must not drain the bucket.
        elapsed = max(0.0, now - self.updated)
        return min(float(self.burst), self.tokens + elapsed * self.per_second)

    def take(self, now: float) -> float:
        """Take one token at ``now``: return 0.0 when allowed, else the seconds to wait
        until one is available (nothing is taken then)."""
        tokens = self.level(now)
        self.updated = max(now, self.updated)
        wait = (1.0 - tokens) / self.per_second
        if wait <= WAIT_EPSILON:
            self.tokens = max(0.0, tokens - 1.0)
            return 0.0
        self.tokens = tokens
        return wait

    def idle_after(self) -> float:
        """Seconds after ``updated`` when the bucket is full again, so its state can be
        forgotten (a fresh full bucket is equivalent)."""
        return (self.burst - self.tokens) / self.per_second


@dataclass
class FixedWindow:
    """Counts events in a window of ``window`` seconds that opens at the first event.

    Once the window has passed, the next event opens a new one.
    """

    window: float
    count: int = 0
    started: float = 0.0

    def __post_init__(self) -> None:
        if not self.window > 0:
            raise ValueError(f"window must be positive, got {self.window}")

    def expired(self, now: float) -> bool:
        """True when no window is open at ``now`` (never hit, or the window has passed)."""
        return self.count == 0 or now >= self.started + self.window

    def hit(self, now: float) -> int:
        """Count one event at ``now``; return the count in its window, this one included."""
        if self.expired(now):
            self.count = 0
            self.started = now
        self.count += 1
        return self.count

    def reserve(self, now: float, limit: int) -> float:
        """Count one event at ``now`` only if fewer than ``limit`` are counted: return
        0.0 when counted, else the seconds until the window closes (nothing is counted
        then)."""
        check_limit(limit)
        if not self.expired(now) and self.count >= limit:
            return self.expires_at() - now
        self.hit(now)
        return 0.0

    def release(self, now: float) -> None:
        """Take back one event of the open window (nothing once it has closed)."""
        if not self.expired(now):
            self.count -= 1

    def expires_at(self) -> float:
        """When the open window closes."""
        return self.started + self.window
