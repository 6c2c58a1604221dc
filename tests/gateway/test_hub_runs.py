"""Fewer writes, same frames, same order: a wake-up with several messages of one
conversation is one write per socket that is right before them (one per message for the
others), and a send's ack shares the write of the message that follows it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import orjson
import pytest

from palaver.gateway.client import Client
from palaver.gateway.frames import encode_text_frame
from palaver.gateway.hub import Hub
from palaver.metrics import Metrics
from palaver.services import signals

CID = 7


class Outlet:
    writes_runs = True

    def __init__(self) -> None:
        self.writes: list[bytes] = []

    def send_frame(self, frame: bytes) -> None:
        self.writes.append(frame)

    def close(self, code: int, reason: str = "") -> None:
        raise AssertionError("not closed in these tests")


class OneByOne(Outlet):
    """An outlet that reads each frame it is given (as the compat dialects' do)."""

    writes_runs = False


def make_hub() -> Hub:
    services: Any = SimpleNamespace(
        store=None,
        users=None,
        settings=SimpleNamespace(presence_ttl=30.0),
        metrics=Metrics(),
    )
    return Hub(services, encode_text_frame)


def attach(hub: Hub, outlet: Outlet, cursor: int) -> Client:
    principal: Any = SimpleNamespace(user=SimpleNamespace(id=1))
    client = Client(hub, outlet, principal)
    client.synced = True
    client.cursors[CID] = cursor
    hub.by_conversation.setdefault(CID, set()).add(client)
    return client


def wake(hub: Hub, *seqs: int) -> list[bytes]:
    bodies = [b'{"type":"message","seq":%d}' % seq for seq in seqs]
    hub._on_broker(
        signals.conversation_channel(CID),
        signals.encode_messages(CID, list(zip(seqs, bodies, strict=True))),
    )
    return [encode_text_frame(body) for body in bodies]


def test_a_socket_right_before_the_messages_gets_them_in_one_write() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    frames = wake(hub, 5, 6, 7)
    assert outlet.writes == [b"".join(frames)]
    assert client.cursors[CID] == 7
    assert hub.services.metrics.deliveries.pending == 3


def test_an_outlet_that_reads_frames_gets_them_one_by_one() -> None:
    hub = make_hub()
    outlet = OneByOne()
    client = attach(hub, outlet, cursor=4)
    frames = wake(hub, 5, 6)
    assert outlet.writes == frames
    assert client.cursors[CID] == 6


def test_a_socket_that_already_has_some_gets_only_the_rest() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=5)
    frames = wake(hub, 5, 6, 7)
    assert outlet.writes == frames[1:]
    assert client.cursors[CID] == 7


def test_sockets_at_different_cursors_each_get_what_they_miss() -> None:
    hub = make_hub()
    ahead, current = Outlet(), Outlet()
    attach(hub, current, cursor=9)
    attach(hub, ahead, cursor=10)
    frames = wake(hub, 10, 11)
    assert current.writes == [b"".join(frames)]
    assert ahead.writes == frames[1:]


def test_a_socket_not_yet_resumed_gets_nothing_yet() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    client.synced = False
    wake(hub, 5, 6)
    assert outlet.writes == []
    assert client.cursors[CID] == 4


def test_a_wake_up_with_a_hole_or_a_repeat_goes_one_by_one(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Length and ends alone would take [5, 5, 7] for a run."""
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    caught_up: list[tuple[int, int]] = []
    monkeypatch.setattr(Client, "catch_up", lambda self, cid, upto=0: caught_up.append((cid, upto)))
    frames = wake(hub, 5, 5, 7)
    assert outlet.writes == [frames[0]]  # 5 once; 6 and 7 are read from the store
    assert client.cursors[CID] == 5
    assert caught_up == [(CID, 7)]


# -- a send's ack and the message itself, in one write ---------------------------------

ACK = {"type": "ack", "id": "a1", "seq": 5}


def encoded(frame: dict[str, object]) -> bytes:
    return encode_text_frame(orjson.dumps(frame))


async def test_an_ack_goes_out_with_the_message_that_follows_it() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    client.send_with_next(ACK)
    assert outlet.writes == []
    frames = wake(hub, 5)
    assert outlet.writes == [encoded(ACK) + frames[0]]
    await asyncio.sleep(0)  # the loop's next turn writes nothing more
    assert outlet.writes == [encoded(ACK) + frames[0]]
    assert client.held is None


async def test_an_ack_goes_out_with_a_run_of_messages_that_follows_it() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    other = Outlet()
    attach(hub, other, cursor=4)
    client.send_with_next(ACK)
    frames = wake(hub, 5, 6)
    assert outlet.writes == [encoded(ACK) + b"".join(frames)]
    assert other.writes == [b"".join(frames)]


async def test_an_ack_with_nothing_after_it_goes_out_on_the_next_turn() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    client.send_with_next(ACK)
    client.send_with_next({**ACK, "id": "a2"})
    assert outlet.writes == []
    await asyncio.sleep(0)
    assert outlet.writes == [encoded(ACK) + encoded({**ACK, "id": "a2"})]


async def test_a_held_ack_stays_ahead_of_any_later_frame() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    client.send_with_next(ACK)
    client.send({"type": "error", "id": "b"})
    assert outlet.writes == [encoded(ACK) + encoded({"type": "error", "id": "b"})]
    await asyncio.sleep(0)
    assert len(outlet.writes) == 1


async def test_an_outlet_that_reads_frames_gets_its_ack_at_once() -> None:
    hub = make_hub()
    outlet = OneByOne()
    client = attach(hub, outlet, cursor=4)
    client.send_with_next(ACK)
    assert outlet.writes == [encoded(ACK)]


async def test_a_socket_closed_meanwhile_drops_its_held_ack() -> None:
    hub = make_hub()
    outlet = Outlet()
    client = attach(hub, outlet, cursor=4)
    client.send_with_next(ACK)
    client.closed = True
    await asyncio.sleep(0)
    assert outlet.writes == []
