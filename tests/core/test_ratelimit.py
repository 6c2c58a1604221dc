from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from palaver.core.ratelimit import WAIT_EPSILON, FixedWindow, TokenBucket, check_bucket_params


def test_full_bucket_allows_burst_then_advises_wait() -> None:
    bucket = TokenBucket.full(burst=3, per_second=2.0, now=100.0)
    assert [bucket.take(100.0) for _ in range(3)] == [0.0, 0.0, 0.0]
    assert bucket.take(100.0) == pytest.approx(0.5)
    # Refused requests take nothing: the advice does not grow.
    assert bucket.take(100.0) == pytest.approx(0.5)
    assert bucket.take(100.25) == pytest.approx(0.25)
    assert bucket.take(100.5) == 0.0


def test_refill_is_capped_at_burst() -> None:
    bucket = TokenBucket.full(burst=2, per_second=10.0, now=0.0)
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.level(1000.0) == 2.0
    assert [bucket.take(1000.0) for _ in range(3)][:2] == [0.0, 0.0]


def test_clock_stepping_back_does_not_drain_or_refill() -> None:
    bucket = TokenBucket.full(burst=1, per_second=1.0, now=10.0)
    assert bucket.take(10.0) == 0.0
    assert bucket.take(5.0) == pytest.approx(1.0)
    assert bucket.updated == 10.0


def test_idle_after_says_when_state_can_be_dropped() -> None:
    bucket = TokenBucket.full(burst=4, per_second=2.0, now=0.0)
    assert bucket.idle_after() == 0.0
    bucket.take(0.0)
    bucket.take(0.0)
    assert bucket.idle_after() == pytest.approx(1.0)


@pytest.mark.parametrize(
    ("burst", "per_second"), [(0, 1.0), (1, 0.0), (1, -1.0), (1, math.inf), (1, math.nan)]
)
def test_bad_parameters_are_refused(burst: int, per_second: float) -> None:
    with pytest.raises(ValueError, match=r"burst|per_second"):
        check_bucket_params(burst, per_second)
    with pytest.raises(ValueError, match=r"burst|per_second"):
        TokenBucket.full(burst, per_second, 0.0)


@given(
    burst=st.integers(1, 50),
    per_second=st.floats(0.01, 1000.0),
    steps=st.lists(st.floats(0.0, 5.0), min_size=1, max_size=200),
)
def test_never_grants_more_than_burst_plus_refill(
    burst: int, per_second: float, steps: list[float]
) -> None:
    start = 1_000.0
    bucket = TokenBucket.full(burst, per_second, start)
    now = start
    granted = 0
    for step in steps:
        now += step
        if bucket.take(now) == 0.0:
            granted += 1
        assert granted <= burst + per_second * (now - start + granted * WAIT_EPSILON) + 1e-9


@given(
    burst=st.integers(1, 20),
    per_second=st.floats(0.01, 1000.0),
    start=st.floats(0.0, 1e6),
    extra=st.integers(1, 20),
)
def test_waiting_the_advised_time_is_enough(
    burst: int, per_second: float, start: float, extra: int
) -> None:
    bucket = TokenBucket.full(burst, per_second, start)
    now = start
    for _ in range(burst + extra):
        wait = bucket.take(now)
        if wait:
            assert wait <= 1.0 / per_second
            now += wait
            assert bucket.take(now) == 0.0


def test_fixed_window_counts_from_first_hit() -> None:
    window = FixedWindow(window=10.0)
    assert window.expired(0.0)
    assert window.hit(5.0) == 1
    assert window.hit(9.0) == 2
    assert window.hit(14.9) == 3
    assert window.expires_at() == 15.0
    assert window.hit(15.0) == 1
    assert window.expires_at() == 25.0


def test_fixed_window_reserves_up_to_its_limit() -> None:
    window = FixedWindow(window=10.0)
    assert [window.reserve(5.0, 2) for _ in range(2)] == [0.0, 0.0]
    # Full: refused with the time until the window closes, and nothing counted.
    assert window.reserve(8.0, 2) == 7.0
    assert window.count == 2
    # A reservation taken back frees its place in the same window.
    window.release(9.0)
    assert window.reserve(9.0, 2) == 0.0
    assert window.reserve(9.5, 2) == 5.5
    # Once the window has closed, nothing is taken back and a new one opens.
    window.release(15.0)
    assert window.count == 2
    assert window.reserve(15.0, 2) == 0.0
    assert (window.count, window.expires_at()) == (1, 25.0)


def test_fixed_window_refuses_empty_window() -> None:
    with pytest.raises(ValueError, match="window"):
        FixedWindow(window=0.0)


@given(
    window=st.floats(0.1, 100.0),
    steps=st.lists(st.floats(0.0, 50.0), min_size=1, max_size=100),
)
def test_fixed_window_count_matches_hits_since_window_opened(
    window: float, steps: list[float]
) -> None:
    counter = FixedWindow(window=window)
    now = 0.0
    opened = None
    hits: list[float] = []
    for step in steps:
        now += step
        if opened is None or now >= opened + window:
            opened, hits = now, []
        hits.append(now)
        assert counter.hit(now) == len(hits)
