from __future__ import annotations

import pytest

from palaver.broker import create_broker
from palaver.broker.memory import MemoryBroker
from palaver.broker.redis import RedisBroker


def test_empty_url_is_the_in_process_broker() -> None:
    broker = create_broker("", node_id="n1")
    assert isinstance(broker, MemoryBroker)
    assert broker.node_id == "n1"


@pytest.mark.parametrize(
    "url", ["redis://127.0.0.1:6379/0", "rediss://cache.example:6380/1", "unix:///run/redis.sock"]
)
async def test_redis_urls_make_a_redis_broker(url: str) -> None:
    broker = create_broker(url, node_id="n1", namespace="chat")
    assert isinstance(broker, RedisBroker)
    assert (broker.node_id, broker.namespace, broker.url) == ("n1", "chat", url)
    await broker.close()  # never started: nothing to reach


@pytest.mark.parametrize("url", ["memory://", "http://127.0.0.1:6379", "127.0.0.1:6379"])
def test_other_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match=r"empty string.*redis://, rediss:// or unix://"):
        create_broker(url)
