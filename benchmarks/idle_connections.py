"""Resident memory per idle WebSocket connection: Palaver beside the Node.js ``ws`` peer.

For each server: start it pinned to cpu 0 (or target one already running with ``--url``
and ``--pid``), read its VmRSS with no connection open, open N idle connections from
client processes pinned to cpu 1, wait for the server to settle, read VmRSS again and
report ``(after - before) / N``. Palaver's connections are authenticated (one user is
registered and its access token reused by every socket) and answer the server's pings,
so they stay open as long as the measurement needs.

    uv run python benchmarks/idle_connections.py --connections 18000
    uv run python benchmarks/idle_connections.py --servers palaver \
        --url ws://127.0.0.1:8000/ws --pid 1234

The clients are raw asyncio sockets speaking just enough WebSocket (the upgrade, then
pong for every ping) to keep thousands of connections cheap on the client side. They
are split over ``--procs`` processes; each raises its file limit to the hard limit.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import json
import multiprocessing as mp
import os
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

from wsframes import frame_at  # next to this script

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SERVER_CPU = 0
CLIENT_CPU = 1


# -- client side (runs in child processes) -------------------------------------------


class IdleSocket(asyncio.Protocol):
    """One idle WebSocket client: upgrade, then answer pings and ignore the rest."""

    def __init__(self, request: bytes, opened: asyncio.Future[bool]) -> None:
        self.request = request
        self.opened = opened
        self.buf = b""
        self.upgraded = False
        self.transport: asyncio.Transport | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if not self.upgraded:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4 :]
            ok = head.startswith(b"HTTP/1.1 101")
            if not self.opened.done():
                self.opened.set_result(ok)
            if not ok:
                assert self.transport is not None
                self.transport.close()
                return
            self.upgraded = True
        self._frames()

    def _frames(self) -> None:
        buf = self.buf
        while (frame := frame_at(buf)) is not None:
            opcode, offset, end = frame
            payload = buf[offset:end]
            buf = buf[end:]
            if opcode == 0x9 and self.transport is not None:  # ping -> masked pong
                mask = os.urandom(4)
                masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + mask + masked)
            elif opcode == 0x8:  # close
                self.closed = True
        self.buf = buf

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if not self.opened.done():
            self.opened.set_result(False)


def _request(host: str, port: int, target: str) -> bytes:
    key = base64.b64encode(os.urandom(16)).decode()
    return (
        f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    ).encode()


async def _client(host: str, port: int, target: str, count: int, conn: object) -> None:
    loop = asyncio.get_running_loop()
    sockets: list[IdleSocket] = []
    transports: list[asyncio.BaseTransport] = []
    failed = 0
    sem = asyncio.Semaphore(64)

    async def one() -> None:
        nonlocal failed
        async with sem:
            opened: asyncio.Future[bool] = loop.create_future()
            proto = IdleSocket(_request(host, port, target), opened)
            try:
                transport, _ = await loop.create_connection(lambda: proto, host, port)
            except OSError:
                failed += 1
                return
            transports.append(transport)
            if await opened:
                sockets.append(proto)
            else:
                failed += 1

    # Commands from the parent: ("open", k) opens k more sockets, "count" says how many
    # are still open, "close" ends. Sockets are held (answering pings) in between.
    commands: asyncio.Queue[object] = asyncio.Queue()
    loop.add_reader(conn.fileno(), lambda: commands.put_nowait(conn.recv()))  # type: ignore[attr-defined]
    while True:
        command = await commands.get()
        if isinstance(command, tuple) and command[0] == "open":
            await asyncio.gather(*(one() for _ in range(command[1])))
            conn.send({"opened": len(sockets), "failed": failed})  # type: ignore[attr-defined]
        elif command == "count":
            conn.send({"open": sum(1 for s in sockets if not s.closed)})  # type: ignore[attr-defined]
        else:
            break
    for t in transports:
        t.abort()


def client_main(host: str, port: int, target: str, count: int, conn: object) -> None:
    os.sched_setaffinity(0, {CLIENT_CPU})
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = count + 256
    if hard != resource.RLIM_INFINITY and hard < want:
        conn.send({"error": f"file limit {hard} < {want}: use more --procs"})  # type: ignore[attr-defined]
        return
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), hard))
    try:
        import uvloop

        uvloop.run(_client(host, port, target, count, conn))
    except ImportError:
        asyncio.run(_client(host, port, target, count, conn))


# -- servers ---------------------------------------------------------------------------


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for {pid}")


def wait_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def start_server(
    argv: list[str], port: int, env: dict[str, str] | None = None
) -> subprocess.Popen[bytes]:
    # The log goes to a file: an unread pipe would block the server once it filled.
    log = tempfile.TemporaryFile()  # noqa: SIM115 - outlives this function with the server
    proc = subprocess.Popen(
        ["taskset", "-c", str(SERVER_CPU), *argv],
        env={**os.environ, **(env or {})},
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_raise_nofile,
    )
    try:
        wait_port(port)
    except RuntimeError:
        proc.kill()
        log.seek(0)
        raise RuntimeError(f"server failed: {log.read().decode()[-2000:]}") from None
    return proc


def stop_server(proc: subprocess.Popen[bytes]) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def palaver_token(http_base: str) -> str:
    import httpx

    name = "idle" + secrets.token_hex(4)
    password = "Bb1-" + secrets.token_urlsafe(12)
    r = httpx.post(
        f"{http_base}/api/auth/register", json={"username": name, "password": password}, timeout=30
    )
    r.raise_for_status()
    return str(r.json()["access_token"])


# -- measurement -----------------------------------------------------------------------


def measure(
    name: str, url: str, pid: int, n: int, procs: int, settle: float, phases: int = 2
) -> dict[str, object]:
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    time.sleep(settle)
    before = rss_kb(pid)
    ctx = mp.get_context("spawn")
    children = []
    per = [n // procs + (1 if i < n % procs else 0) for i in range(procs)]
    for count in per:
        parent, child = ctx.Pipe()
        p = ctx.Process(target=client_main, args=(host, port, target, count, child), daemon=True)
        p.start()
        children.append((p, parent))
    # Two equal steps, so the marginal cost of the second half shows apart from any
    # one-off allocation the first connections trigger.
    readings = []
    opened = failed = 0
    errors: list[str] = []
    dead: list[object] = []
    started = time.monotonic()
    for step in range(phases):
        live = [(c, count) for c, count in zip(children, per, strict=True) if c not in dead]
        for (_, parent), count in live:
            share = count // phases + (1 if step < count % phases else 0)
            parent.send(("open", share))
        opened = failed = 0
        for child, _ in live:
            report = child[1].recv()
            if "error" in report:
                errors.append(report["error"])
                dead.append(child)
                continue
            opened += report["opened"]
            failed += report["failed"]
        time.sleep(settle)  # past Palaver's 0.5 s resume grace; let allocations settle
        readings.append((opened, rss_kb(pid)))
    connect_s = time.monotonic() - started - settle * phases
    after = readings[-1][1]
    still_open = 0
    for _, parent in children:
        try:
            parent.send("count")
            still_open += parent.recv()["open"]
        except (EOFError, BrokenPipeError):
            pass
    for p, parent in children:
        with contextlib.suppress(BrokenPipeError):
            parent.send("close")
        p.join(30)
    result = {
        "server": name,
        "connections": n,
        "opened": opened,
        "failed": failed,
        "still_open": still_open,
        "client_procs": procs,
        "connect_s": round(connect_s, 1),
        "rss_before_mb": round(before / 1024, 1),
        "rss_after_mb": round(after / 1024, 1),
        "rss_kb_per_conn": round((after - before) / max(1, opened), 2),
        "rss_steps_mb": [[o, round(kb / 1024, 1)] for o, kb in readings],
    }
    if len(readings) >= 2:
        (o1, r1), (o2, r2) = readings[-2], readings[-1]
        result["rss_kb_per_conn_last_step"] = round((r2 - r1) / max(1, o2 - o1), 2)
    if errors:
        result["errors"] = errors
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--connections", "-n", type=int, default=18000)
    parser.add_argument("--procs", type=int, default=2, help="client processes")
    parser.add_argument("--servers", default="palaver,ws-node", help="palaver,ws-node")
    parser.add_argument("--url", help="target a running Palaver (ws://host:port/ws); needs --pid")
    parser.add_argument("--pid", type=int, help="pid of the running Palaver server")
    parser.add_argument("--port", type=int, default=8766, help="port for a Palaver started here")
    parser.add_argument("--ws-port", type=int, default=7111, help="port for the ws-node peer")
    parser.add_argument("--settle", type=float, default=3.0, help="seconds before each reading")
    parser.add_argument(
        "--bench-dir", default=os.environ.get("BENCH_DIR", str(ROOT.parent / "shared" / "bench"))
    )
    parser.add_argument("--json", action="store_true", help="JSON lines only")
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if not args.json:
        print(
            f"file limit: soft {soft}, hard {hard}; {args.connections} connections "
            f"over {args.procs} client processes",
            file=sys.stderr,
        )
    results = []
    for server in [s.strip() for s in args.servers.split(",") if s.strip()]:
        if server == "palaver":
            if args.url:
                if not args.pid:
                    parser.error("--url needs --pid")
                parts = urlsplit(args.url)
                http_base = f"http://{parts.netloc}"
                token = palaver_token(http_base)
                results.append(
                    measure(
                        "palaver",
                        f"{args.url}?token={token}",
                        args.pid,
                        args.connections,
                        args.procs,
                        args.settle,
                    )
                )
            else:
                tmp = tempfile.mkdtemp(prefix="palaver-idle.")
                env = {
                    "PALAVER_MAX_CONNECTIONS_PER_IP": "100000",
                    "PALAVER_LOG_LEVEL": "warning",
                }
                proc = start_server(
                    [
                        str(ROOT / ".venv/bin/palaver"),
                        "serve",
                        "--host",
                        "127.0.0.1",
                        "--port",
                        str(args.port),
                        "--data-dir",
                        tmp,
                    ],
                    args.port,
                    env,
                )
                try:
                    token = palaver_token(f"http://127.0.0.1:{args.port}")
                    results.append(
                        measure(
                            "palaver",
                            f"ws://127.0.0.1:{args.port}/ws?token={token}",
                            proc.pid,
                            args.connections,
                            args.procs,
                            args.settle,
                        )
                    )
                finally:
                    stop_server(proc)
                    shutil.rmtree(tmp, ignore_errors=True)
        elif server == "ws-node":
            peer = Path(args.bench_dir) / "peers" / "ws-node.js"
            proc = start_server(["node", str(peer)], args.ws_port, {"PORT": str(args.ws_port)})
            try:
                results.append(
                    measure(
                        "ws-node",
                        f"ws://127.0.0.1:{args.ws_port}/ws",
                        proc.pid,
                        args.connections,
                        args.procs,
                        args.settle,
                    )
                )
            finally:
                stop_server(proc)
        else:
            parser.error(f"unknown server {server}")
        print(json.dumps(results[-1]), flush=True)
    by = {r["server"]: r for r in results}
    if not args.json and "palaver" in by and "ws-node" in by:
        ratio = float(by["palaver"]["rss_kb_per_conn"]) / max(
            0.01, float(by["ws-node"]["rss_kb_per_conn"])
        )
        print(f"palaver/ws-node RSS per connection: {ratio:.2f} (target <= 0.75)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
