"""Prometheus metrics, owned by one :class:`Metrics` object per application.

Each :class:`Metrics` has its own :class:`~prometheus_client.CollectorRegistry`, so a
test can build as many applications as it likes without "Duplicated timeseries" errors.
Pass the object to whatever records (middleware, services, the gateway) and to
:func:`palaver.http.ops.ops_router`, which serves :meth:`Metrics.render` at ``/metrics``.

Several worker processes
    Set ``PROMETHEUS_MULTIPROC_DIR`` to an empty directory (wiped at every start) in the
    environment of the parent process, before Python starts: prometheus_client picks
    its value storage when it is first imported. Each worker then writes its samples to
    memory-mapped files there and :meth:`Metrics.render` merges all workers' files, so
    any worker answers ``/metrics`` for the whole server. Counters and histograms are
    summed; ``ws_connections`` counts live workers only. Call
    :func:`mark_process_dead` with a worker's pid when it exits. Process metrics (CPU,
    memory, file descriptors) are not exported in this mode.
"""

from __future__ import annotations

import os
import time
from bisect import bisect_left
from collections.abc import Iterator
from contextlib import contextmanager

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
    values,
)
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["MULTIPROC_ENV", "Metrics", "Tally", "TimingTally", "mark_process_dead"]

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

# HTTP handlers here are database-bound: most answer in 1-50 ms, and anything past
# 10 s has already been cut by the proxy.
_HTTP_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
# Fan-out and commits are budgeted in milliseconds (p99 ack under 20 ms, end-to-end
# under 50 ms), so the buckets are dense below 100 ms.
_FAST_BUCKETS = (
    0.0001,
    0.00025,
    0.0005,
    0.001,
    0.0025,
    0.005,
    0.01,
    0.02,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
)


def _multiprocess_dir() -> str | None:
    path = os.environ.get(MULTIPROC_ENV)
    if not path:
        return None
    if values.ValueClass is values.MutexValue:
        raise RuntimeError(
            f"{MULTIPROC_ENV} was set after prometheus_client was imported; "
            "set it in the environment before the process starts"
        )
    return path


class Tally:
    """A counter for the per-frame hot path: ``inc`` adds to a plain integer, and
    :meth:`flush` hands the total to the Prometheus counter.

    A Prometheus ``Counter.inc`` takes a lock (or, with several workers, writes a
    memory-mapped file) on every call: about a microsecond, paid per frame in and per
    frame out. :class:`Metrics` flushes on every scrape and once a second, so what
    ``/metrics`` shows lags by at most that second.
    """

    __slots__ = ("counter", "pending")

    def __init__(self, counter: Counter) -> None:
        self.counter = counter
        self.pending = 0

    def inc(self, amount: int = 1) -> None:
        self.pending += amount

    def flush(self) -> None:
        if self.pending:
            amount, self.pending = self.pending, 0
            self.counter.inc(amount)


class TimingTally:
    """A histogram for the hot path, as :class:`Tally` is a counter: ``observe`` counts
    into plain integers (one C bisect for the bucket), and :meth:`flush` adds them to
    the Prometheus histogram's bucket and sum values.

    ``Histogram.observe`` walks the buckets in Python and takes two locks: 2-3 us per
    wake-up or commit, a few percent of a send's CPU time. There is no public bulk
    ``observe``, so flushing writes the same values ``observe`` does (its ``_sum`` and
    ``_buckets``); ``tests/test_metrics.py`` checks that the exposition matches.
    """

    __slots__ = ("bounds", "counts", "histogram", "pending", "total")

    def __init__(self, histogram: Histogram) -> None:
        self.histogram = histogram
        self.bounds = tuple(histogram._upper_bounds)
        self.counts = [0] * len(self.bounds)
        self.total = 0.0
        self.pending = 0

    def observe(self, seconds: float) -> None:
        # The last bound is +Inf, so every value finds a bucket.
        self.counts[bisect_left(self.bounds, seconds)] += 1
        self.total += seconds
        self.pending += 1

    def flush(self) -> None:
        if not self.pending:
            return
        counts, self.counts = self.counts, [0] * len(self.bounds)
        total, self.total = self.total, 0.0
        self.pending = 0
        histogram = self.histogram
        histogram._sum.inc(total)
        for bucket, count in zip(histogram._buckets, counts, strict=True):
            if count:
                bucket.inc(count)


def mark_process_dead(pid: int) -> None:
    """Drop a dead worker's live gauges (multiprocess mode only; else a no-op)."""
    path = _multiprocess_dir()
    if path:
        multiprocess.mark_process_dead(pid, path)  # type: ignore[no-untyped-call]


class Metrics:
    """The server's metrics, registered in a registry of their own.

    Record through the attributes, for example
    ``metrics.logins.labels(outcome="success").inc()`` or
    ``with metrics.db_transaction_timer("send_message"): ...``.
    """

    def __init__(self, *, namespace: str = "") -> None:
        self.multiprocess_dir = _multiprocess_dir()
        self.registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir is None:
            ProcessCollector(registry=self.registry)
            PlatformCollector(registry=self.registry)
            GCCollector(registry=self.registry)
        reg, ns = self.registry, namespace

        self.http_requests = Counter(
            "http_requests_total",
            "HTTP requests answered, by route template and status code.",
            ["method", "route", "status"],
            namespace=ns,
            registry=reg,
        )
        self.http_request_duration = Histogram(
            "http_request_duration_seconds",
            "Time from request to the end of the response body.",
            ["method", "route"],
            buckets=_HTTP_BUCKETS,
            namespace=ns,
            registry=reg,
        )
        self.logins = Counter(
            "logins_total", "Login attempts by outcome.", ["outcome"], namespace=ns, registry=reg
        )
        self.registrations = Counter(
            "registrations_total", "Accounts registered.", namespace=ns, registry=reg
        )

        self.ws_connections = Gauge(
            "ws_connections",
            "Open WebSocket connections.",
            multiprocess_mode="livesum",
            namespace=ns,
            registry=reg,
        )
        self.ws_frames_in = Tally(
            Counter("ws_frames_in_total", "WebSocket frames received.", namespace=ns, registry=reg)
        )
        self.ws_frames_out = Tally(
            Counter("ws_frames_out_total", "WebSocket frames sent.", namespace=ns, registry=reg)
        )
        self.deliveries = Tally(
            Counter(
                "deliveries_total", "Events delivered to connections.", namespace=ns, registry=reg
            )
        )
        self.fanout_latency = TimingTally(
            Histogram(
                "fanout_latency_seconds",
                "Time from commit to the last local connection written.",
                buckets=_FAST_BUCKETS,
                namespace=ns,
                registry=reg,
            )
        )
        self.slow_consumers_dropped = Counter(
            "slow_consumers_dropped_total",
            "Connections closed because their send queue overflowed.",
            namespace=ns,
            registry=reg,
        )
        self.rate_limited = Counter(
            "rate_limited_total",
            "Requests or frames refused by a rate limit.",
            ["scope"],
            namespace=ns,
            registry=reg,
        )
        self.db_transaction = Histogram(
            "db_transaction_seconds",
            "Duration of named database transactions.",
            ["name"],
            buckets=_FAST_BUCKETS,
            namespace=ns,
            registry=reg,
        )
        #: Each group commit's duration (``db_transaction_seconds{name="group_commit"}``).
        self.group_commit = TimingTally(self.db_transaction.labels(name="group_commit"))
        self._tallies: tuple[Tally | TimingTally, ...] = (
            self.ws_frames_in,
            self.ws_frames_out,
            self.deliveries,
            self.fanout_latency,
            self.group_commit,
        )

    @contextmanager
    def db_transaction_timer(self, name: str) -> Iterator[None]:
        """Time the block as the database transaction ``name``, failed or not."""
        start = time.perf_counter()
        try:
            yield
        finally:
            self.db_transaction.labels(name=name).observe(time.perf_counter() - start)

    def flush(self) -> None:
        """Hand the hot-path tallies to Prometheus (every scrape, and once a second)."""
        for tally in self._tallies:
            tally.flush()

    def render(self) -> tuple[bytes, str]:
        """The exposition text of every metric and its ``Content-Type``."""
        self.flush()
        if self.multiprocess_dir is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        # A fresh registry per scrape: the collector reads every worker's files.
        merged = CollectorRegistry()
        multiprocess.MultiProcessCollector(merged, path=self.multiprocess_dir)  # type: ignore[no-untyped-call]
        return generate_latest(merged), CONTENT_TYPE_LATEST
