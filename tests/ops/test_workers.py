"""`palaver serve --workers 2`: two processes on one port, fan-out between them through
Redis, metrics merged across workers, a clean stop."""

from __future__ import annotations

import asyncio
import re
import signal
from pathlib import Path

import httpx
import orjson
import pytest

from tests.deployment import Deployment, Node, connect, register, room_with, until_seq
from tests.realtime.conftest import Client

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]


async def node_ids(node: Node, requests: int) -> list[str]:
    """The node id of the worker answering each of ``requests`` fresh connections."""
    found = []
    for _ in range(requests):
        # A new client per request: a kept-alive connection would stay on one worker.
        async with httpx.AsyncClient(base_url=node.base, timeout=10) as http:
            found.append((await http.get("/info")).json()["node_id"])
    return found


async def wait_for_workers(node: Node, count: int, timeout: float = 90) -> int:
    """Wait until ``count`` distinct workers answer; the number of /info requests made."""
    made = 0
    async with asyncio.timeout(timeout):
        while True:
            made += 10
            if len(set(await node_ids(node, 10))) >= count:
                return made
            await asyncio.sleep(0.5)


def metric(text: str, name: str, labels: str = "") -> float:
    pattern = re.escape(name) + (r"\{" + re.escape(labels) + r"\}" if labels else "") + r" (\S+)"
    match = re.search(r"^" + pattern + r"$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


async def test_two_workers_share_a_port_and_deliver_across_processes(
    deployment: Deployment,
) -> None:
    # The secret key comes from a config file given on the command line: the workers,
    # which never see that file, must still check tokens with it.
    config = deployment.tmp / "palaver.yaml"
    config.write_text(f"secret_key: {deployment.secret}\n")
    node = deployment.node("workers", "--workers", "2", "--config", str(config))
    del node.env["PALAVER_SECRET_KEY"]
    await node.start()
    info_requests = await wait_for_workers(node, 2)

    _, bob = await register(node.base, "bob")
    created = await asyncio.to_thread(
        deployment.palaver, "user", "create", "ada", "--password-stdin"
    )
    assert created.returncode == 0, created.stderr
    minted = await asyncio.to_thread(deployment.palaver, "token", "ada")
    assert minted.returncode == 0, minted.stderr
    ada = minted.stdout.strip()
    room = await room_with(node.base, ada, "general", bob)

    sender = await connect(node.ws_url, ada)
    # Each connection lands on whichever worker accepts it first: open bob's sockets
    # until one is held by the other worker.
    sockets: list[Client] = [sender]
    receiver: Client | None = None
    for _ in range(40):
        client = await connect(node.ws_url, bob)
        sockets.append(client)
        if client.hello["node"] != sender.hello["node"]:
            receiver = client
            break
    assert receiver is not None, "40 sockets all landed on one worker"

    ack = await sender.send_text(room, "across workers", client_msg_id="w-1")
    assert ack["type"] == "ack"
    got = (await until_seq(receiver, room, ack["seq"]))[-1]
    assert (got["seq"], got["content"]) == (ack["seq"], "across workers")
    back = await receiver.send_text(room, "and back", client_msg_id="w-2")
    # Seq 1 is the notice "bob joined"; the sockets get it too.
    mine = await until_seq(sender, room, back["seq"])
    assert [m["seq"] for m in mine] == [1, ack["seq"], back["seq"]]
    assert [m["content"] for m in mine[1:]] == ["across workers", "and back"]

    # Either worker answers /metrics for both: counters are summed over the workers.
    async with httpx.AsyncClient(base_url=node.base, timeout=10) as http:
        text = (await http.get("/metrics")).text
    assert "process_cpu_seconds_total" not in text  # multiprocess mode
    assert metric(text, "http_requests_total", 'method="GET",route="/info",status="200"') == (
        info_requests
    )
    assert metric(text, "ws_connections") == len(sockets)

    node.send_signal(signal.SIGTERM)
    for client in sockets:
        assert await client.closed_with(timeout=30) in (1001, 1012)
    assert await node.wait() == 0
    # The metrics directory made for this run is gone with it.
    started = [
        orjson.loads(line)
        for line in node.log.read_text().splitlines()
        if line.startswith("{") and '"server.workers"' in line
    ]
    assert started, node.log_tail()
    assert not Path(started[0]["metrics_dir"]).exists()
