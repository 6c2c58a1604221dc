"""Property: whatever the interleaving of sends, drops and reconnects, every device ends up
with exactly the conversation's log: no gap, no duplicate, no reordering.

A Hypothesis state machine drives a real server (its own event loop, advanced only
inside each step) with several users and devices; sends whose socket dies before the
ack are retried with the same ``client_msg_id`` after reconnecting, as a client must.
"""

from __future__ import annotations

import asyncio
import tempfile
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from tests.isolated import isolated_settings
from tests.realtime.conftest import Client, Server, start_server

USERS = 3
DEVICES = 2  # per user


class Device:
    def __init__(self, user: int) -> None:
        self.user = user
        self.client: Client | None = None
        self.log: list[int] = []  # sequence numbers received, across every connection
        self.seen = 0  # messages of the current connection already moved into the log

    def collect(self) -> None:
        """Append what the current socket received since the last look."""
        if self.client is None:
            return
        fresh = self.client.messages[self.seen :]
        self.seen += len(fresh)
        self.log.extend(int(m["seq"]) for m in fresh)

    @property
    def cursor(self) -> int:
        return self.log[-1] if self.log else 0


class DeliveryMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.tmp = tempfile.TemporaryDirectory()
        config = isolated_settings(
            self.tmp.name,
            rate_messages_burst=100_000,
            rate_messages_per_second=100_000.0,
        )
        self._servers = start_server(config)
        self.server: Server = self.run(anext(self._servers))
        self.tokens: list[str] = []
        for i in range(USERS):
            _, token = self.run(self.server.user(f"u{i}"))
            self.tokens.append(token)
        self.room = self.run(self.server.room(self.tokens[0], "prop"))
        for token in self.tokens[1:]:
            self.run(self.server.rest(token, "POST", f"/api/conversations/{self.room}/join"))
        self.devices = [Device(u) for u in range(USERS) for _ in range(DEVICES)]
        self.unacked: dict[str, tuple[int, str]] = {}  # client_msg_id -> (user, content)
        self.acked: dict[str, int] = {}  # client_msg_id -> seq
        self.counter = 0

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    # -- rules -----------------------------------------------------------------------

    @rule(index=st.integers(0, USERS * DEVICES - 1))
    def connect(self, index: int) -> None:
        device = self.devices[index]
        if device.client is not None:
            return
        device.seen = 0
        device.client = self.run(
            self.server.connect(self.tokens[device.user], resume={self.room: device.cursor})
        )

    @rule(index=st.integers(0, USERS * DEVICES - 1), abrupt=st.booleans())
    def disconnect(self, index: int, abrupt: bool) -> None:
        device = self.devices[index]
        if device.client is None:
            return
        device.collect()
        client, device.client = device.client, None
        if abrupt:
            client.ws.transport.abort()
            client._reader.cancel()
        else:
            self.run(client.close())

    @rule(index=st.integers(0, USERS * DEVICES - 1), wait=st.booleans())
    def send(self, index: int, wait: bool) -> None:
        device = self.devices[index]
        if device.client is None:
            return
        self.counter += 1
        cmid = f"m{self.counter}"
        content = f"u{device.user} #{self.counter}"
        self.unacked[cmid] = (device.user, content)
        frame = {
            "type": "send",
            "conversation_id": self.room,
            "content": content,
            "client_msg_id": cmid,
        }
        if wait:
            reply = self.run(device.client.request(frame, "ack"))
            self._settle(cmid, reply)
        else:
            # Fire and forget: the socket may be dropped before the ack comes.
            self.run(device.client.ws.send(_json(frame)))

    @precondition(lambda self: bool(self.unacked))
    @rule(index=st.integers(0, USERS * DEVICES - 1))
    def retry_unacked(self, index: int) -> None:
        device = self.devices[index]
        pending = [(c, v) for c, v in self.unacked.items() if v[0] == device.user]
        if device.client is None or not pending:
            return
        cmid, (_, content) = pending[0]
        reply = self.run(
            device.client.request(
                {
                    "type": "send",
                    "conversation_id": self.room,
                    "content": content,
                    "client_msg_id": cmid,
                },
                "ack",
            )
        )
        self._settle(cmid, reply)

    @rule()
    def let_time_pass(self) -> None:
        self.run(asyncio.sleep(0.02))

    def _settle(self, cmid: str, reply: dict[str, Any]) -> None:
        assert reply["type"] == "ack", reply
        if cmid in self.acked:
            assert reply["duplicate"] is True
            assert reply["seq"] == self.acked[cmid]
        self.acked[cmid] = reply["seq"]
        self.unacked.pop(cmid, None)

    # -- invariants ------------------------------------------------------------------

    @invariant()
    def logs_are_contiguous_prefixes(self) -> None:
        for device in self.devices:
            device.collect()
            assert device.log == list(range(1, len(device.log) + 1)), device.log

    def teardown(self) -> None:
        try:
            self._final_check()
        finally:
            for device in self.devices:
                if device.client is not None:
                    self.run(device.client.close())
            self.run(_finish(self._servers))
            self.loop.close()
            self.tmp.cleanup()

    def _final_check(self) -> None:
        # Everyone retries what is still unacknowledged, then every device reconnects
        # and must converge on the stored log.
        for device in self.devices:
            if device.client is None:
                self.connect(self.devices.index(device))
        for cmid, (user, _) in list(self.unacked.items()):
            device = next(d for d in self.devices if d.user == user)
            self.retry_unacked(self.devices.index(device))
            assert cmid not in self.unacked
        stored = self.run(
            self.server.services.store.get_messages(self.room, after_seq=0, limit=10_000)
        )
        last = stored[-1].seq if stored else 0
        assert [m.seq for m in stored] == list(range(1, last + 1))
        client_ids = [m.client_msg_id for m in stored if m.client_msg_id]
        assert len(client_ids) == len(set(client_ids)), "a send was stored twice"
        assert set(self.acked) <= set(client_ids), "an acknowledged message is missing"
        for seq_of in self.acked.values():
            assert 1 <= seq_of <= last
        for device in self.devices:
            for _ in range(200):
                device.collect()
                if device.cursor >= last:
                    break
                self.run(asyncio.sleep(0.02))
            assert device.log == list(range(1, last + 1))


def _json(frame: dict[str, Any]) -> str:
    import orjson

    return orjson.dumps(frame).decode()


async def _finish(servers: Any) -> None:
    with pytest.raises(StopAsyncIteration):
        await anext(servers)


TestDeliveryProperties = DeliveryMachine.TestCase
TestDeliveryProperties.settings = settings(
    max_examples=12,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
