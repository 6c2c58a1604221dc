"""A rolling upgrade of two nodes (PostgreSQL + Redis), as README.md's "Deployment"
describes it: `palaver migrate` while both serve, then each node in turn gets SIGTERM,
its clients reconnect to the other node with their cursors and receive everything sent
meanwhile exactly once, and the node comes back."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from dataclasses import dataclass, field
from typing import Any

import pytest

from tests.deployment import Deployment, Node, connect, register, rest, room_with
from tests.realtime.conftest import Client

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


@dataclass
class Reader:
    """One user's socket, moved from node to node, keeping every message it got."""

    name: str
    token: str
    room: int
    client: Client | None = None
    node: Node | None = None
    received: list[dict[str, Any]] = field(default_factory=list)
    connections: int = 0

    @property
    def cursor(self) -> int:
        got = self.all_messages()
        return int(got[-1]["seq"]) if got else 0

    def all_messages(self) -> list[dict[str, Any]]:
        live = self.client.messages if self.client is not None else []
        return self.received + [m for m in live if m["conversation_id"] == self.room]

    async def attach(self, node: Node) -> None:
        """Connect to ``node`` resuming from the cursor, as a client does after 1012."""
        if self.client is not None:
            self.received = self.all_messages()
        self.client = await connect(node.ws_url, self.token, resume={self.room: self.cursor})
        assert self.client.hello["node"], self.client.hello
        self.node = node
        self.connections += 1

    async def wait_for(self, seq: int, timeout: float = 15) -> None:
        async with asyncio.timeout(timeout):
            while self.cursor < seq:
                await asyncio.sleep(0.02)


@dataclass
class Sender:
    """Sends over REST to whichever node is serving, steadily, until stopped."""

    token: str
    room: int
    target: Node
    acked: list[int] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        count = 0
        while not self.stop.is_set():
            count += 1
            r = await rest(
                self.target.base,
                self.token,
                "POST",
                f"/api/conversations/{self.room}/messages",
                json={"content": f"steady {count}", "client_msg_id": f"steady-{count}"},
            )
            assert r.status_code == 201, r.text
            self.acked.append(int(r.json()["seq"]))
            await asyncio.sleep(0.03)


async def stop_node(node: Node, readers: list[Reader]) -> None:
    """SIGTERM ``node``: each of its sockets is closed with "reconnect elsewhere"."""
    node.send_signal(signal.SIGTERM)
    for reader in readers:
        assert reader.client is not None
        assert await reader.client.closed_with(timeout=30) in (1001, 1012), reader.name


def assert_exactly_once(reader: Reader, first_seq: int, last_seq: int) -> None:
    seqs = [int(m["seq"]) for m in reader.all_messages()]
    assert seqs == list(range(first_seq, seqs[-1] + 1)), f"{reader.name}: gaps or repeats"
    assert seqs[-1] >= last_seq, reader.name
    contents = [m["content"] for m in reader.all_messages()]
    assert len(contents) == len(set(contents)), f"{reader.name}: a message came twice"


async def test_rolling_upgrade_keeps_every_client(deployment: Deployment) -> None:
    a, b = deployment.node("a"), deployment.node("b")
    await asyncio.gather(a.start(), b.start())
    tokens = {name: (await register(a.base, name))[1] for name in ("ada", "bob", "cy", "eve")}
    room = await room_with(a.base, tokens["eve"], "upgrade", tokens["ada"], tokens["bob"])
    joined = await rest(b.base, tokens["cy"], "POST", f"/api/conversations/{room}/join")
    assert joined.status_code == 200
    readers = [Reader(name, tokens[name], room) for name in ("ada", "bob", "cy")]
    ada, bob, cy = readers
    for reader, node in ((ada, a), (bob, b), (cy, a)):
        await reader.attach(node)

    # Migrations first, while both nodes serve: nothing is disturbed.
    migrated = await asyncio.to_thread(deployment.palaver, "migrate")
    assert migrated.returncode == 0, migrated.stderr
    assert "newest schema" in migrated.stdout
    sender = Sender(tokens["eve"], room, b)
    sending = asyncio.create_task(sender.run())
    try:
        await asyncio.sleep(0.3)
        for reader in readers:
            assert reader.client is not None
            assert reader.client.ws.close_code is None, f"{reader.name} was disconnected"
            await reader.wait_for(sender.acked[-1])
        first_seq = readers[0].all_messages()[0]["seq"]

        # Node A goes: its clients move to B and catch up with what B took meanwhile.
        await stop_node(a, [ada, cy])
        await asyncio.sleep(0.3)  # messages go on arriving while they are away
        for reader in (ada, cy):
            await reader.attach(b)
        assert await a.wait() in (0, -signal.SIGTERM)
        await a.start()
        for reader in readers:
            await reader.wait_for(sender.acked[-1])

        # Then node B: everyone (and the sender) moves to the restarted A.
        sender.target = a
        await asyncio.sleep(0.3)
        await stop_node(b, readers)
        await asyncio.sleep(0.3)
        for reader in readers:
            await reader.attach(a)
        assert await b.wait() in (0, -signal.SIGTERM)
        await b.start()
        await asyncio.sleep(0.3)
    finally:
        sender.stop.set()
        with contextlib.suppress(asyncio.CancelledError):
            await sending
    last_seq = sender.acked[-1]
    assert len(sender.acked) > 20
    for reader in readers:
        await reader.wait_for(last_seq)
        assert_exactly_once(reader, first_seq, last_seq)
    assert [ada.connections, bob.connections, cy.connections] == [3, 2, 3]
    for reader in readers:
        assert reader.client is not None
        await reader.client.close()
