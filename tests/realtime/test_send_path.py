"""The socket's send path: a plain send runs without a task of its own, and the
socket's next commands still wait for its outcome; a commit is announced whoever
still waits for it."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import orjson
import pytest

from palaver.core.models import Appended, NewMessage
from palaver.gateway.hub import Hub
from palaver.services import signals
from palaver.store.base import StoreUnavailable
from tests.realtime.conftest import Client, Server


class HeldCommits:
    """Stands in front of the store's append: each batch waits for ``release``, and
    fails with ``failure`` when one is set."""

    def __init__(self, server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
        store = server.services.store
        self._append = store.append_messages
        self.entered = asyncio.Event()
        self.release = asyncio.Event()
        self.failure: Exception | None = None
        monkeypatch.setattr(store, "append_messages", self.append_messages)

    async def append_messages(self, batch: Sequence[NewMessage], at: int) -> list[Appended]:
        self.entered.set()
        await self.release.wait()
        failure, self.failure = self.failure, None
        if failure is not None:
            raise failure
        return await self._append(batch, at)


async def send_raw(client: Client, frame: dict[str, Any]) -> None:
    await client.ws.send(orjson.dumps(frame).decode())


async def replies(client: Client, ids: set[str]) -> list[dict[str, Any]]:
    """Frames carrying one of ``ids``, in arrival order, once all have come."""
    got: list[dict[str, Any]] = []
    async with asyncio.timeout(5):
        while {f["id"] for f in got} != ids:
            frame = await client.frames.get()
            if frame.get("id") in ids:
                got.append(frame)
    return got


async def test_commands_behind_a_send_wait_for_its_ack(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await server.user()
    room = await server.room(token, "order")
    client = await server.connect(token)
    held = HeldCommits(server, monkeypatch)
    messaging = server.services.messaging
    history = messaging.history
    started_while_held: list[bool] = []

    async def watched(*args: Any, **kwargs: Any) -> Any:
        started_while_held.append(not held.release.is_set())
        return await history(*args, **kwargs)

    monkeypatch.setattr(messaging, "history", watched)
    await send_raw(client, {"type": "send", "id": "s", "conversation_id": room, "content": "a"})
    async with asyncio.timeout(5):
        await held.entered.wait()
    await send_raw(client, {"type": "history", "id": "h", "conversation_id": room})
    # A ping is answered at once, so by its pong the history frame has been read.
    await client.request({"type": "ping"}, "pong")
    await asyncio.sleep(0.05)  # room for a wrongly started history to begin
    held.release.set()
    ack, page = await replies(client, {"s", "h"})
    assert started_while_held == [False]
    assert ack["type"] == "ack"
    assert page["type"] == "history"
    assert page["messages"][-1]["seq"] == ack["seq"]
    await client.close()


async def test_a_failed_commit_answers_the_send_and_runs_what_waited(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, token = await server.user()
    room = await server.room(token, "failing")
    client = await server.connect(token)
    held = HeldCommits(server, monkeypatch)
    held.failure = StoreUnavailable("disk gone")
    await send_raw(client, {"type": "send", "id": "s1", "conversation_id": room, "content": "x"})
    async with asyncio.timeout(5):
        await held.entered.wait()
    await send_raw(client, {"type": "send", "id": "s2", "conversation_id": room, "content": "y"})
    held.release.set()
    error, ack = await replies(client, {"s1", "s2"})
    assert error["type"] == "error"
    assert error["code"] == "UNAVAILABLE"
    assert ack["type"] == "ack"
    history = await client.request({"type": "history", "conversation_id": room}, "history")
    assert [m["content"] for m in history["messages"] if m["kind"] == "text"] == ["y"]
    await client.close()


async def test_plain_sends_start_no_task(server: Server, monkeypatch: pytest.MonkeyPatch) -> None:
    _, token = await server.user()
    room = await server.room(token, "lean")
    client = await server.connect(token)
    spawned: list[str] = []
    spawn = Hub.spawn

    def counting(hub: Hub, coro: Any) -> None:
        spawned.append(coro.__qualname__)
        spawn(hub, coro)

    monkeypatch.setattr(Hub, "spawn", counting)
    for i in range(5):
        assert (await client.send_text(room, f"plain {i}"))["type"] == "ack"
    assert "NativeHandler._drain" not in spawned
    # A mention needs the store (who is mentioned), so it takes the task's road.
    assert (await client.send_text(room, "hi @nobody"))["type"] == "ack"
    assert "NativeHandler._drain" in spawned
    await client.close()


async def test_errors_found_before_the_commit_answer_the_frame(server: Server) -> None:
    _, token = await server.user()
    room = await server.room(token, "checks")
    client = await server.connect(token)
    too_long = "x" * (server.settings.max_message_length + 1)
    for content, code in (("", "EMPTY_CONTENT"), (too_long, "CONTENT_TOO_LONG")):
        reply = await client.request(
            {"type": "send", "conversation_id": room, "content": content}, "ack"
        )
        assert reply["type"] == "error"
        assert reply["code"] == code
    assert (await client.send_text(room, "still open"))["type"] == "ack"
    await client.close()


async def test_a_committed_send_is_announced_when_nobody_waits_for_it(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    user_id, token = await server.user()
    room = await server.room(token, "announced")
    services = server.services
    heard: list[bytes] = []
    subscription = await services.broker.subscribe(
        lambda channel, payload: heard.append(payload), [signals.conversation_channel(room)]
    )
    held = HeldCommits(server, monkeypatch)
    user = await services.store.get_user(user_id)
    assert user is not None
    sending = asyncio.create_task(services.messaging.send(user, room, "orphan"))
    async with asyncio.timeout(5):
        await held.entered.wait()
    sending.cancel()  # the caller went away (its socket closed, say)
    held.release.set()
    async with asyncio.timeout(5):
        while not any(b"orphan" in payload for payload in heard):
            await asyncio.sleep(0.01)
    with pytest.raises(asyncio.CancelledError):
        await sending
    await subscription.close()


async def test_receipts_sent_just_before_a_close_still_move_the_cursors(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, ada = await server.user()
    bob_id, bob = await server.user()
    room = await server.room(ada, "receipts")
    await server.rest(bob, "POST", f"/api/conversations/{room}/join")
    sender = await server.connect(ada, resume={})
    last = 0
    for i in range(5):
        last = (await sender.send_text(room, f"m{i}"))["seq"]
    reader = await server.connect(bob, resume={})
    await reader.wait_messages(room, last)
    messaging = server.services.messaging
    require_member = messaging.require_member
    checking = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_check(conversation_id: int, user_id: int) -> Any:
        checking.set()
        await go_on.wait()
        return await require_member(conversation_id, user_id)

    monkeypatch.setattr(messaging, "require_member", slow_check)
    for seq in range(1, last + 1):
        await send_raw(reader, {"type": "read", "conversation_id": room, "seq": seq})
    async with asyncio.timeout(5):
        await checking.wait()  # the first receipt runs; the others wait behind it
    await reader.close()
    hub = server.gateway.handler.hub
    async with asyncio.timeout(5):
        while bob_id in hub.by_user:  # until the server has seen the close
            await asyncio.sleep(0.01)
    go_on.set()
    async with asyncio.timeout(5):
        while True:
            await messaging.flush_receipts()
            member = await server.services.store.get_member(room, bob_id)
            assert member is not None
            if member.read_seq == last:
                break
            await asyncio.sleep(0.01)
    assert member.delivered_seq == last
    await sender.close()


async def test_the_ack_comes_before_the_message_on_either_path(server: Server) -> None:
    _, token = await server.user()
    room = await server.room(token, "acks")
    client = await server.connect(token, resume={})
    # Plain text runs without a task; a mention, a reply or a recipient by name with one.
    for i, content in enumerate(("plain", "hi @nobody", "again @nobody")):
        await send_raw(
            client, {"type": "send", "id": f"s{i}", "conversation_id": room, "content": content}
        )
        order = []
        async with asyncio.timeout(5):
            while len(order) < 2:
                frame = await client.frames.get()
                if frame["type"] in ("ack", "message"):
                    order.append((frame["type"], frame["seq"]))
        assert order[0][0] == "ack"
        assert order == [("ack", order[0][1]), ("message", order[0][1])]
    await client.close()


@pytest.mark.parametrize("content", ["plain", "hi @nobody"], ids=["fast", "task"])
async def test_the_ack_comes_first_when_a_catch_up_reads_the_message(
    server: Server, monkeypatch: pytest.MonkeyPatch, content: str
) -> None:
    """A send from a socket still catching up on the same conversation, on either path
    (plain text without a task, a mention with one): the catch-up reads the store just
    after the commit and its answer reaches the loop before the writer's does, so it
    holds the message. The ack must still go first."""
    _, token = await server.user()
    room = await server.room(token, "catching")
    first = await server.connect(token, resume={})
    for i in range(3):
        await first.send_text(room, f"m{i}")
    store = server.services.store
    real_append, real_read = store.append_messages, store.get_messages
    stored, read_done = asyncio.Event(), asyncio.Event()

    async def append_messages(batch: Sequence[NewMessage], at: int) -> list[Appended]:
        result = await real_append(batch, at)  # committed: readers see it
        if any(new.content == content for new in batch):
            stored.set()
            # The reader's answer reaches the loop before the writer's.
            await asyncio.wait_for(read_done.wait(), 5)
        return result

    async def get_messages(conversation_id: int, **kwargs: Any) -> Any:
        if conversation_id != room or read_done.is_set():
            return await real_read(conversation_id, **kwargs)
        await asyncio.wait_for(stored.wait(), 5)
        page = await real_read(conversation_id, **kwargs)
        read_done.set()
        return page

    monkeypatch.setattr(store, "append_messages", append_messages)
    monkeypatch.setattr(store, "get_messages", get_messages)
    client = await server.connect(token, resume={room: 0})
    await send_raw(client, {"type": "send", "id": "s", "conversation_id": room, "content": content})
    order = []
    async with asyncio.timeout(5):
        while ("ack", 4) not in order or ("message", 4) not in order:
            frame = await client.frames.get()
            if frame["type"] in ("ack", "message"):
                order.append((frame["type"], frame["seq"]))
    assert [seq for kind, seq in order if kind == "message"] == [1, 2, 3, 4]
    assert order.index(("ack", 4)) < order.index(("message", 4)), order
    await asyncio.gather(first.close(), client.close())


async def test_a_plain_sends_ack_and_message_share_one_write(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's socket is written once per send: the ack, then the message, in one
    system call (the durable-write path's main cost per message is its system calls)."""
    from palaver.gateway.transport import Connection

    _, token = await server.user()
    room = await server.room(token, "writes")
    client = await server.connect(token, resume={})
    writes: list[bytes] = []
    send_frame = Connection.send_frame

    def recording(conn: Connection, frame: bytes) -> None:
        writes.append(frame)
        send_frame(conn, frame)

    monkeypatch.setattr(Connection, "send_frame", recording)
    for i in range(3):
        ack = await client.send_text(room, f"plain {i}")
        await client.wait_messages(room, ack["seq"])
        mine = [w for w in writes if b'"ack"' in w or b'"message"' in w]
        assert len(mine) == 1
        assert mine[0].index(b'"ack"') < mine[0].index(b'"message"')
        writes.clear()
    await client.close()
