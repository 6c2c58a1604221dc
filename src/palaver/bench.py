"""``palaver bench``: a load generator for a running Palaver server.

R rooms of M members; S members of each room send at a fixed rate; every member counts
what it receives. Reports deliveries per second, loss (messages acknowledged but not
received by a member), and end-to-end latency percentiles; ``--json`` prints the figures
as one JSON object. The send time travels inside the message, so latency is measured
on this machine's clock only.

    palaver bench --url http://127.0.0.1:8000 --rooms 10 --members 100 --senders 2 \\
        --rate 25 --duration 8
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import websockets


@dataclass
class Stats:
    sent: int = 0
    acked: int = 0
    errors: int = 0
    received: int = 0
    latencies: list[float] = field(default_factory=list)
    expected: int = 0


def _percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def _register(http: httpx.AsyncClient, name: str, password: str) -> str:
    response = await http.post("/api/auth/register", json={"username": name, "password": password})
    response.raise_for_status()
    token: str = response.json()["token"]
    return token


async def _member(url: str, token: str, stats: Stats, measuring: list[bool]) -> Any:
    ws = await websockets.connect(f"{url}?token={token}", max_size=2**20, compression=None)
    await ws.send(orjson.dumps({"type": "resume", "cursors": {}}).decode())

    async def read() -> None:
        with contextlib.suppress(websockets.ConnectionClosed):
            async for raw in ws:
                # Cheap filter: only message frames carry a send time in their content.
                if b'"bench:' not in (raw if isinstance(raw, bytes) else raw.encode()):
                    continue
                frame = orjson.loads(raw)
                if frame.get("type") != "message":
                    continue
                sent_at = float(frame["content"].split(":", 2)[1])
                if measuring[0]:
                    stats.received += 1
                    stats.latencies.append(time.perf_counter() - sent_at)

    task = asyncio.create_task(read())
    return ws, task


async def run(args: argparse.Namespace) -> dict[str, Any]:
    base = args.url.rstrip("/")
    ws_url = base.replace("http", "ws", 1) + "/ws"
    tag = secrets.token_hex(3)
    # Fresh accounts per run, with a password that satisfies the default policy.
    password = "Bb1-" + secrets.token_urlsafe(12)
    stats = Stats()
    measuring = [False]
    limits = httpx.Limits(max_connections=32)
    async with httpx.AsyncClient(base_url=base, limits=limits, timeout=60) as http:
        total = args.rooms * args.members
        print(f"registering {total} users...", file=sys.stderr)
        sem = asyncio.Semaphore(16)

        async def reg(i: int) -> str:
            async with sem:
                return await _register(http, f"b{tag}u{i}", password)

        tokens = await asyncio.gather(*(reg(i) for i in range(total)))
        rooms = []
        for r in range(args.rooms):
            owner = tokens[r * args.members]
            created = await http.post(
                "/api/conversations",
                json={"type": "room", "name": f"bench-{tag}-{r}"},
                headers={"Authorization": f"Bearer {owner}"},
            )
            created.raise_for_status()
            room_id = created.json()["id"]
            rooms.append(room_id)
            for m in range(1, args.members):
                joined = await http.post(
                    f"/api/conversations/{room_id}/join",
                    headers={"Authorization": f"Bearer {tokens[r * args.members + m]}"},
                )
                joined.raise_for_status()
    print("connecting...", file=sys.stderr)
    sockets = []
    for r in range(len(rooms)):
        for m in range(args.members):
            sockets.append(
                (
                    r,
                    m,
                    await _member(ws_url, tokens[r * args.members + m], stats, measuring),
                )
            )
    await asyncio.sleep(1.0)  # let the resume grace pass and joins settle
    measuring[0] = True
    interval = 1.0 / args.rate
    deadline = time.perf_counter() + args.duration

    async def sender(ws: Any, room_id: int) -> None:
        counter = 0
        next_at = time.perf_counter()
        while time.perf_counter() < deadline:
            counter += 1
            body = {
                "type": "send",
                "id": counter,
                "conversation_id": room_id,
                "content": f"bench:{time.perf_counter()!r}:x",
            }
            try:
                await ws.send(orjson.dumps(body).decode())
            except websockets.ConnectionClosed:
                break
            stats.sent += 1
            next_at += interval
            await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    senders = []
    for r, m, (ws, _task) in sockets:
        if m < args.senders:
            senders.append(asyncio.create_task(sender(ws, rooms[r])))
    started = time.perf_counter()
    progress = asyncio.create_task(_progress(stats, args.duration, started, args.quiet))
    await asyncio.gather(*senders)
    await asyncio.sleep(args.drain)
    measuring[0] = False
    progress.cancel()
    elapsed = time.perf_counter() - started
    for _, _, (ws, task) in sockets:
        await ws.close()
        task.cancel()
    expected = stats.sent * args.members
    return {
        "rooms": args.rooms,
        "members": args.members,
        "senders": args.senders,
        "rate": args.rate,
        "duration": args.duration,
        "sent": stats.sent,
        "expected_deliveries": expected,
        "deliveries": stats.received,
        "deliveries_per_second": round(stats.received / elapsed, 1),
        "loss": max(0, expected - stats.received),
        "loss_ratio": round(max(0, expected - stats.received) / expected, 6) if expected else 0,
        "latency_ms": {
            q: round(_percentile(stats.latencies, float(q[1:])) * 1000, 2)
            for q in ("p50", "p90", "p99", "p999")
        }
        | {"max": round(max(stats.latencies, default=float("nan")) * 1000, 2)},
    }


async def _progress(stats: Stats, duration: float, started: float, quiet: bool) -> None:
    if quiet:
        return
    width = 30
    while True:
        await asyncio.sleep(0.5)
        done = min(1.0, (time.perf_counter() - started) / duration)
        bar = "#" * int(done * width)
        print(
            f"\r[{bar:<{width}}] {done * 100:5.1f}%  sent {stats.sent}  received {stats.received}",
            end="",
            file=sys.stderr,
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="palaver bench", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--url", default=os.environ.get("PALAVER_BENCH_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument("--rooms", type=int, default=10)
    parser.add_argument("--members", type=int, default=100)
    parser.add_argument("--senders", type=int, default=2, help="senders per room")
    parser.add_argument("--rate", type=float, default=25.0, help="messages/s per sender")
    parser.add_argument("--duration", type=float, default=8.0, help="seconds of sending")
    parser.add_argument("--drain", type=float, default=2.0, help="seconds to wait after")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    try:
        import uvloop
    except ImportError:
        result = asyncio.run(run(args))
    else:
        result = uvloop.run(run(args))
    print(file=sys.stderr)
    if args.json:
        print(json.dumps(result))
    else:
        lat = result["latency_ms"]
        print(
            f"deliveries {result['deliveries']}/{result['expected_deliveries']} "
            f"({result['deliveries_per_second']}/s), loss {result['loss']}, latency ms "
            f"p50 {lat['p50']} p90 {lat['p90']} p99 {lat['p99']} max {lat['max']}"
        )
    return 0
