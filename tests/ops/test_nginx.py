"""deploy/nginx.conf in front of two real Palaver nodes (PostgreSQL + Redis): WebSockets
through nginx reach sockets held by the other node, both nodes take sockets, REST works
through it, Palaver sees the client's own address, and a node that stops hands its
clients over."""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.deployment import (
    PASSWORD,
    Deployment,
    Node,
    connect,
    free_port,
    register,
    room_with,
    until_seq,
)
from tests.services import in_ci

pytestmark = [pytest.mark.postgres, pytest.mark.redis, pytest.mark.slow]

DEPLOY_CONF = Path(__file__).resolve().parents[2] / "deploy" / "nginx.conf"
# The address the test client connects from: not nginx's own (127.0.0.1), so the
# address Palaver reports can only have come from X-Forwarded-For.
CLIENT_ADDRESS = "127.0.0.2"


def nginx_binary() -> str:
    found = shutil.which("nginx") or next(
        (p for p in ("/usr/sbin/nginx", "/usr/local/sbin/nginx") if os.access(p, os.X_OK)), None
    )
    if found:
        return found
    message = "nginx is NOT installed (`make service-deps` installs Debian's): cannot run"
    if in_ci():
        pytest.fail(message + " (CI=true makes this a failure)", pytrace=False)
    pytest.skip(f"*** {message} ***")


def render_config(text: str, *, port: int, upstreams: tuple[int, int], prefix: Path) -> str:
    """deploy/nginx.conf with test ports and paths; every other directive unchanged.

    nginx runs in the foreground as one process of the current user (``daemon off``,
    ``master_process off``), with its pid file and temporary files under ``prefix``.
    """
    replacements = {
        "server palaver-a:8000": f"server 127.0.0.1:{upstreams[0]}",
        "server palaver-b:8000": f"server 127.0.0.1:{upstreams[1]}",
        "listen 80;": f"listen 127.0.0.1:{port};",
        "pid /var/run/nginx.pid;": f"pid {prefix}/nginx.pid;",
        # One process of the current user: no user to switch to.
        "user nginx;": "",
    }
    for old, new in replacements.items():
        # Node addresses appear once per upstream; the rest exactly once.
        expected = text.count("\n    upstream ") if old.startswith("server ") else 1
        assert text.count(old) == expected, f"deploy/nginx.conf: {old!r} not {expected} times"
        text = text.replace(old, new)
    temp_paths = "".join(
        f"    {kind}_temp_path {prefix}/{kind};\n"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    assert text.count("\nhttp {\n") == 1
    text = text.replace("\nhttp {\n", "\nhttp {\n" + temp_paths, 1)
    return "daemon off;\nmaster_process off;\n" + text


@contextlib.contextmanager
def running_nginx(binary: str, tmp_path: Path, upstreams: tuple[int, int]) -> Iterator[int]:
    """nginx with the rendered configuration; yields its port."""
    prefix = tmp_path / "nginx"
    prefix.mkdir()
    port = free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        render_config(DEPLOY_CONF.read_text(), port=port, upstreams=upstreams, prefix=prefix)
    )
    command = [binary, "-p", str(prefix), "-c", str(conf), "-e", "stderr"]
    checked = subprocess.run(
        [*command, "-t"], capture_output=True, text=True, timeout=30, check=False
    )
    assert checked.returncode == 0, checked.stderr
    log = prefix / "output.log"
    with log.open("wb") as sink:
        process = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT)
    try:
        for _ in range(200):
            if process.poll() is not None:
                pytest.fail(f"nginx exited:\n{log.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
                break
            time.sleep(0.05)
        yield port
    finally:
        process.send_signal(signal.SIGQUIT)  # graceful: finish, then exit
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


async def node_id(node: Node) -> str:
    async with httpx.AsyncClient(base_url=node.base, timeout=10) as http:
        return str((await http.get("/info")).json()["node_id"])


async def test_nginx_in_front_of_two_nodes(deployment: Deployment, tmp_path: Path) -> None:
    binary = nginx_binary()
    a = deployment.node("a", trusted_proxies="127.0.0.1")
    b = deployment.node("b", trusted_proxies="127.0.0.1")
    await asyncio.gather(a.start(), b.start())
    nodes = {await node_id(a): a, await node_id(b): b}

    with running_nginx(binary, tmp_path, (a.port, b.port)) as port:
        proxy = f"http://127.0.0.1:{port}"
        proxy_ws = f"ws://127.0.0.1:{port}/ws"

        # REST through nginx from CLIENT_ADDRESS, with a forged X-Forwarded-For: nginx
        # appends the real peer and Palaver believes only that hop from its proxy.
        forged = {"X-Forwarded-For": "198.51.100.66"}
        transport = httpx.AsyncHTTPTransport(local_address=CLIENT_ADDRESS)
        async with httpx.AsyncClient(base_url=proxy, transport=transport, timeout=30) as http:
            registered = await http.post(
                "/api/auth/register", json={"username": "ada", "password": PASSWORD}
            )
            assert registered.status_code == 201, registered.text
            login = await http.post(
                "/api/auth/login", json={"login": "ada", "password": PASSWORD}, headers=forged
            )
            assert login.status_code == 200, login.text
            ada = login.json()["access_token"]
            sessions = await http.get(
                "/api/auth/sessions", headers={"Authorization": f"Bearer {ada}", **forged}
            )
            assert sessions.status_code == 200
            assert {s["ip"] for s in sessions.json()} == {CLIENT_ADDRESS}
        _, bob = await register(a.base, "bob")
        room = await room_with(proxy, ada, "general", bob)

        # A browser-style socket through nginx (same-origin check on the passed Host),
        # and bob's socket straight on the other node.
        ada_ws = await connect(proxy_ws, ada, resume={}, origin=proxy)
        other = next(node for nid, node in nodes.items() if nid != ada_ws.hello["node"])
        bob_ws = await connect(other.ws_url, bob, resume={})
        sent = await ada_ws.send_text(room, "through nginx", client_msg_id="n-1")
        got = await until_seq(bob_ws, room, sent["seq"])
        assert (got[-1]["seq"], got[-1]["content"]) == (sent["seq"], "through nginx")
        reply = await bob_ws.send_text(room, "straight back", client_msg_id="n-2")
        mine = await until_seq(ada_ws, room, reply["seq"])
        assert [m["seq"] for m in mine] == [1, sent["seq"], reply["seq"]]
        assert (mine[-1]["seq"], mine[-1]["content"]) == (reply["seq"], "straight back")

        # least_conn: the next socket through nginx goes to the node without one.
        bob_proxied = await connect(proxy_ws, bob, resume={room: reply["seq"]})
        assert bob_proxied.hello["node"] != ada_ws.hello["node"]

        # That node stops: its sockets are told to reconnect, and through nginx they
        # land on the node still serving, missing nothing.
        stopping = nodes[bob_proxied.hello["node"]]
        stopping.send_signal(signal.SIGTERM)
        assert await bob_proxied.closed_with(timeout=30) in (1001, 1012)
        assert await bob_ws.closed_with(timeout=30) in (1001, 1012)
        meanwhile = await ada_ws.send_text(room, "while bob moved", client_msg_id="n-3")
        await stopping.wait()
        moved = await connect(proxy_ws, bob, resume={room: reply["seq"]})
        assert moved.hello["node"] == ada_ws.hello["node"]
        caught_up = await until_seq(moved, room, meanwhile["seq"])
        assert [(m["seq"], m["content"]) for m in caught_up] == [
            (meanwhile["seq"], "while bob moved")
        ]
        async with httpx.AsyncClient(base_url=proxy, timeout=30) as http:
            for _ in range(4):  # none fails while one node is gone
                assert (await http.get("/health")).status_code == 200
        for client in (ada_ws, moved):
            await client.close()
