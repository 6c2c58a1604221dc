"""Durably acknowledged messages per second, end to end, on SQLite or PostgreSQL.

S senders, each its own user with its own room, each with one socket that sends the
next message only once the ``ack`` of the previous one arrived (an ``ack`` is sent only
after the message's transaction committed). Reports acked messages per second over the
measured window, ack latency percentiles, and the server's CPU time per acked message.

The server runs pinned to cpu 0 (started here on a fresh SQLite data directory, or on a
throwaway PostgreSQL database created and dropped here), the senders in client
processes pinned to cpu 1:

    uv run python benchmarks/durable_writes.py --senders 500 --duration 10
    uv run python benchmarks/durable_writes.py --postgres postgresql://USER:PASS@127.0.0.1:5432/test
    uv run python benchmarks/durable_writes.py --url http://127.0.0.1:8000 --pid 1234

The clients speak just enough WebSocket (frames sent with a zero mask, pongs for pings)
to keep their own cost per message well below the server's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing as mp
import os
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from wsframes import frame_at  # next to this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_CPU = 0
CLIENT_CPU = 1

ACK = b'"type":"ack"'
ERROR = b'"type":"error"'


# -- client side (child processes) ----------------------------------------------------


def _frame(payload: bytes) -> bytes:
    """A masked client text frame; the zero mask leaves the payload as it is."""
    n = len(payload)
    if n < 126:
        head = bytes([0x81, 0x80 | n])
    elif n < 65536:
        head = bytes([0x81, 0x80 | 126]) + n.to_bytes(2, "big")
    else:
        head = bytes([0x81, 0x80 | 127]) + n.to_bytes(8, "big")
    return head + b"\x00\x00\x00\x00" + payload


class Sender(asyncio.Protocol):
    """One closed-loop sender: a message, wait for its ack, the next message."""

    def __init__(self, run: Run, request: bytes, conversation_id: int, client_ids: bool) -> None:
        self.run = run
        self.request = request
        self.prefix = b'{"type":"send","conversation_id":%d,"content":"durable ' % conversation_id
        # As the web client sends them: one per message, no two alike.
        self.client_ids = client_ids
        self.tag = secrets.token_hex(6).encode()
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        self.counter = 0
        self.sent_at = 0.0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport.write(self.request)

    def send_next(self) -> None:
        assert self.transport is not None
        self.counter += 1
        self.sent_at = time.perf_counter()
        n = self.counter
        if self.client_ids:
            tail = b'%d","client_msg_id":"%s-%d","id":%d}' % (n, self.tag, n, n)
        else:
            tail = b'%d","id":%d}' % (n, n)
        self.transport.write(_frame(self.prefix + tail))

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        if not self.upgraded:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                self.buf = buf
                return
            ok = buf.startswith(b"HTTP/1.1 101")
            buf = buf[end + 4 :]
            if not self.opened.done():
                self.opened.set_result(ok)
            if not ok:
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
            assert self.transport is not None
            self.transport.write(_frame(b'{"type":"resume","cursors":{}}'))
        run = self.run
        while (frame := frame_at(buf)) is not None:
            opcode, offset, end = frame
            if opcode == 0x1:
                head = buf[offset : offset + 16]
                if head.find(b"ack") >= 0 and buf.find(ACK, offset, end) >= 0:
                    run.on_ack(self, time.perf_counter() - self.sent_at)
                elif buf.find(ERROR, offset, end) >= 0:
                    run.on_error(self, buf[offset:end])
            elif opcode == 0x9 and self.transport is not None:
                self.transport.write(
                    bytes([0x8A, 0x80 | (end - offset)]) + b"\x00\x00\x00\x00" + buf[offset:end]
                )
            buf = buf[end:]
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.run.lost += 1
        if not self.opened.done():
            self.opened.set_result(False)


class Run:
    def __init__(self) -> None:
        self.running = False
        self.measuring = False
        self.acked = 0
        self.errors = 0
        self.lost = 0
        self.latencies: list[float] = []
        self.error_samples: list[str] = []

    def on_ack(self, sender: Sender, latency: float) -> None:
        if self.measuring:
            self.acked += 1
            self.latencies.append(latency)
        if self.running:
            sender.send_next()

    def on_error(self, sender: Sender, payload: bytes) -> None:
        self.errors += 1
        if len(self.error_samples) < 3:
            self.error_samples.append(payload.decode(errors="replace")[:300])
        if self.running:
            sender.send_next()


async def _client(
    host: str, port: int, path: str, pairs: list[tuple[str, int]], conn: Any, client_ids: bool
) -> None:
    loop = asyncio.get_running_loop()
    run = Run()
    senders: list[Sender] = []
    sem = asyncio.Semaphore(64)

    async def open_one(token: str, cid: int) -> None:
        key = "dGhlIHNhbXBsZSBub25jZQ=="
        request = (
            f"GET {path}?token={token} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
        async with sem:
            sender = Sender(run, request, cid, client_ids)
            await loop.create_connection(lambda: sender, host, port)
            if await sender.opened:
                senders.append(sender)

    await asyncio.gather(*(open_one(t, c) for t, c in pairs))
    conn.send({"ready": len(senders)})
    warmup, duration = conn.recv()
    cpu0 = time.process_time()
    run.running = True
    for s in senders:
        s.send_next()
    await asyncio.sleep(warmup)
    run.measuring = True
    started = time.perf_counter()
    await asyncio.sleep(duration)
    run.measuring = False
    window = time.perf_counter() - started
    run.running = False
    await asyncio.sleep(0.5)
    conn.send(
        {
            "acked": run.acked,
            "window": window,
            "errors": run.errors,
            "error_samples": run.error_samples,
            "lost": run.lost,
            "latencies": run.latencies,
            "client_cpu_s": time.process_time() - cpu0,
        }
    )
    for s in senders:
        if s.transport is not None:
            s.transport.abort()


def client_main(
    host: str, port: int, path: str, pairs: list[tuple[str, int]], conn: Any, client_ids: bool
) -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    try:
        import uvloop

        uvloop.run(_client(host, port, path, pairs, conn, client_ids))
    except ImportError:
        asyncio.run(_client(host, port, path, pairs, conn, client_ids))


# -- setup -----------------------------------------------------------------------------


async def make_senders(http_base: str, count: int) -> list[tuple[str, int]]:
    """Register ``count`` users, each with its own room; returns (token, room id)."""
    import httpx

    tag = secrets.token_hex(3)
    password = "Bb1-" + secrets.token_urlsafe(12)
    sem = asyncio.Semaphore(8)
    async with httpx.AsyncClient(base_url=http_base, timeout=120) as http:

        async def one(i: int) -> tuple[str, int]:
            async with sem:
                r = await http.post(
                    "/api/auth/register", json={"username": f"dw{tag}u{i}", "password": password}
                )
                r.raise_for_status()
                token = r.json()["access_token"]
                r = await http.post(
                    "/api/conversations",
                    json={"type": "room", "name": f"dw-{tag}-{i}"},
                    headers={"Authorization": f"Bearer {token}"},
                )
                r.raise_for_status()
                return token, int(r.json()["id"])

        return list(await asyncio.gather(*(one(i) for i in range(count))))


def cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def wait_port(port: int, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def start_palaver(
    port: int, data_dir: str, database_url: str | None, *, indexer: bool = True
) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "PALAVER_SEARCH_INDEXER": "true" if indexer else "false",
        "PALAVER_RATE_MESSAGES_BURST": "1000000",
        "PALAVER_RATE_MESSAGES_PER_SECOND": "1000000",
        "PALAVER_MAX_CONNECTIONS_PER_IP": "100000",
        "PALAVER_LOG_LEVEL": "warning",
    }
    argv = [
        str(ROOT / ".venv/bin/palaver"),
        "serve",
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--data-dir",
        data_dir,
    ]
    if database_url:
        argv += ["--database-url", database_url]
    proc = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), *argv],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        err = proc.stderr.read().decode()[-2000:] if proc.stderr else ""
        raise RuntimeError(f"server did not start: {err}") from None
    return proc


def stop(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q / 100 * (len(ordered) - 1)))]


def measure(
    http_base: str, pid: int | None, args: argparse.Namespace, label: str
) -> dict[str, Any]:
    t0 = time.monotonic()
    pairs = asyncio.run(make_senders(http_base, args.senders))
    setup_s = time.monotonic() - t0
    parts = urlsplit(http_base)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    ctx = mp.get_context("spawn")
    chunks = [pairs[i :: args.procs] for i in range(args.procs)]
    children = []
    for chunk in chunks:
        parent, child = ctx.Pipe()
        p = ctx.Process(
            target=client_main,
            args=(host, port, "/ws", chunk, child, args.client_ids),
            daemon=True,
        )
        p.start()
        children.append((p, parent))
    ready = sum(parent.recv()["ready"] for _, parent in children)
    time.sleep(1.0)  # past the resume grace
    cpu_before = cpu_s(pid) if pid else 0.0
    for _, parent in children:
        parent.send((args.warmup, args.duration))
    reports = [parent.recv() for _, parent in children]
    cpu_after = cpu_s(pid) if pid else 0.0
    for p, _ in children:
        p.join(10)
    acked = sum(r["acked"] for r in reports)
    window = statistics.mean(r["window"] for r in reports)
    latencies = [x for r in reports for x in r["latencies"]]
    total_window = args.warmup + args.duration + 0.5
    result: dict[str, Any] = {
        "store": label,
        "senders": args.senders,
        "client_ids": args.client_ids,
        "connected": ready,
        "setup_s": round(setup_s, 1),
        "duration_s": args.duration,
        "acked": acked,
        "acked_per_s": round(acked / window),
        "ack_p50_ms": round(_pct(latencies, 50) * 1000, 2),
        "ack_p90_ms": round(_pct(latencies, 90) * 1000, 2),
        "ack_p99_ms": round(_pct(latencies, 99) * 1000, 2),
        "ack_max_ms": round(max(latencies, default=float("nan")) * 1000, 2),
        "errors": sum(r["errors"] for r in reports),
        "lost_sockets": sum(r["lost"] for r in reports),
        "client_cpu_pct": round(100 * sum(r["client_cpu_s"] for r in reports) / total_window, 1),
    }
    if pid:
        # CPU over warm-up + window + tail: an upper bound per acked message.
        server_cpu = cpu_after - cpu_before
        result["server_cpu_pct"] = round(100 * server_cpu / total_window, 1)
        result["server_cpu_us_per_ack"] = round(
            1e6 * server_cpu / max(1, acked * total_window / window), 1
        )
    samples = [s for r in reports for s in r["error_samples"]]
    if samples:
        result["error_samples"] = samples[:3]
    return result


# -- PostgreSQL throwaway database ------------------------------------------------------


def _pg_admin(url: str, sql: str) -> None:
    import asyncpg

    async def go() -> None:
        conn = await asyncpg.connect(url)
        try:
            await conn.execute(sql)
        finally:
            await conn.close()

    asyncio.run(go())


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, "/" + name, parts.query, parts.fragment))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--senders", type=int, default=500, help="concurrent closed-loop senders")
    parser.add_argument("--procs", type=int, default=1, help="client processes (all on cpu 1)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds before measuring")
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--url", help="target a running server (http://host:port) instead")
    parser.add_argument("--pid", type=int, help="pid of that server, for its CPU time")
    parser.add_argument(
        "--postgres",
        help="admin URL of a PostgreSQL server (e.g. postgresql://u:p@127.0.0.1:5432/test): "
        "a throwaway database palaver_bench_<random> is created there and dropped after",
    )
    parser.add_argument(
        "--sqlite", action="store_true", help="also run on SQLite (default unless --postgres)"
    )
    parser.add_argument(
        "--no-indexer",
        action="store_true",
        help="start the server without its search indexer (to see what indexing costs)",
    )
    parser.add_argument(
        "--client-ids",
        action="store_true",
        help="give every message a client_msg_id, as the web client does",
    )
    args = parser.parse_args()
    results = []
    if args.url:
        results.append(measure(args.url.rstrip("/"), args.pid, args, "running server"))
    else:
        stores: list[str] = []
        if args.sqlite or not args.postgres:
            stores.append("sqlite")
        if args.postgres:
            stores.append("postgresql")
        for store in stores:
            tmp = tempfile.mkdtemp(prefix="palaver-durable.")
            database_url = None
            dbname = None
            try:
                if store == "postgresql":
                    dbname = f"palaver_bench_{secrets.token_hex(4)}"
                    _pg_admin(args.postgres, f'CREATE DATABASE "{dbname}"')
                    database_url = with_database(args.postgres, dbname)
                proc = start_palaver(args.port, tmp, database_url, indexer=not args.no_indexer)
                try:
                    results.append(measure(f"http://127.0.0.1:{args.port}", proc.pid, args, store))
                finally:
                    stop(proc)
            finally:
                shutil.rmtree(tmp, ignore_errors=True)
                if dbname:
                    _pg_admin(args.postgres, f'DROP DATABASE IF EXISTS "{dbname}" WITH (FORCE)')
            print(json.dumps(results[-1]), flush=True)
    if args.url:
        print(json.dumps(results[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
