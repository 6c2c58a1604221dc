"""Hot-path tallies reach Prometheus on every scrape and on every flush."""

from __future__ import annotations

from palaver.metrics import Metrics


def sample(metrics: Metrics, name: str) -> float:
    value = metrics.registry.get_sample_value(name)
    assert value is not None, name
    return value


def test_tallies_reach_the_counter_only_when_flushed() -> None:
    metrics = Metrics()
    metrics.deliveries.inc(5)
    metrics.ws_frames_in.inc()
    assert sample(metrics, "deliveries_total") == 0
    metrics.flush()
    assert sample(metrics, "deliveries_total") == 5
    assert sample(metrics, "ws_frames_in_total") == 1
    metrics.flush()
    assert sample(metrics, "deliveries_total") == 5


def test_a_scrape_shows_what_was_tallied_since_the_last_flush() -> None:
    metrics = Metrics()
    metrics.ws_frames_out.inc(3)
    text, _ = metrics.render()
    assert b"ws_frames_out_total 3.0" in text
