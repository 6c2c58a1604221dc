"""A socket's conversations follow its user's memberships in the store, even when the
join or leave signal that should have told it was lost (a broker outage) or raced the
socket's opening; and only members write, whatever a socket believes."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from palaver.broker.base import BrokerUnavailable
from palaver.config import Settings
from tests.realtime.conftest import Client, Server, start_server


@pytest.fixture
def check_interval() -> float:
    return 0.3


@pytest.fixture
async def checked(
    settings: Settings, monkeypatch: pytest.MonkeyPatch, check_interval: float
) -> AsyncIterator[Server]:
    """A server of the test's own that checks every socket's memberships once each
    ``check_interval`` seconds."""
    from palaver.gateway import hub

    monkeypatch.setattr(hub, "MEMBERSHIP_CHECK_SECONDS", check_interval)
    async for server in start_server(settings):
        yield server


async def _received(client: Client, conversation_id: int, content: str, wait: float) -> bool:
    await asyncio.sleep(wait)
    return any(
        m["conversation_id"] == conversation_id and m["content"] == content for m in client.messages
    )


def _lose_user_signals(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> Callable[[], Awaitable[None]]:
    """Make publications on users' channels fail, as in a broker outage; return a
    coroutine function that restores them."""
    broker = server.services.broker
    real_publish = broker.publish

    async def flaky_publish(channel: str, payload: bytes) -> None:
        if channel.startswith("user:"):
            raise BrokerUnavailable("broker failing over")
        await real_publish(channel, payload)

    monkeypatch.setattr(broker, "publish", flaky_publish)

    async def restore() -> None:
        monkeypatch.setattr(broker, "publish", real_publish)

    return restore


async def _removed_without_signal(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> tuple[int, Client, Client, str]:
    """Ada's room with Bob in it, each with a socket; Bob is removed and the signal
    that should tell his sockets is lost. Returns the room, Bob's and Ada's sockets
    and Ada's token."""
    ada_id, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    room = await server.room(ada, "general")
    await server.join(bob, room)
    laptop = await server.connect(bob, resume={})
    sender = await server.connect(ada, resume={})
    restore = _lose_user_signals(server, monkeypatch)
    actor = await server.services.store.get_user(ada_id)
    assert actor is not None
    await server.services.conversations.remove_member(actor, room, bob_id)
    await restore()
    assert await server.services.store.get_member(room, bob_id) is None
    return room, laptop, sender, ada


async def test_a_lost_left_signal_is_caught_by_the_membership_check(
    checked: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = checked
    room, laptop, sender, _ = await _removed_without_signal(server, monkeypatch)
    left = await laptop.next("left", timeout=5)
    assert left["conversation_id"] == room
    await sender.send_text(room, "members only")
    assert not await _received(laptop, room, "members only", 0.5)
    await asyncio.gather(sender.close(), laptop.close())


@pytest.mark.parametrize("check_interval", [3600.0])
async def test_a_refused_send_of_a_removed_member_stores_nothing_and_tells_the_socket(
    checked: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before any periodic check, the socket still believes it is in the room; the
    store does not, and the refusal makes the node check at once."""
    server = checked
    room, laptop, sender, ada = await _removed_without_signal(server, monkeypatch)
    refused = await laptop.send_text(room, "I was removed", client_msg_id="x1")
    assert refused["type"] == "error"
    assert refused["code"] == "NOT_FOUND"
    left = await laptop.next("left", timeout=5)
    assert left["conversation_id"] == room
    # The slow path (a reply) is refused alike.
    again = await laptop.send_text(room, "still here?", reply_to_id=1)
    assert again["code"] == "NOT_FOUND"
    await sender.send_text(room, "members only")
    assert not await _received(laptop, room, "members only", 0.5)
    history = await server.rest(ada, "GET", f"/api/conversations/{room}/messages")
    assert [m["content"] for m in history.json()["messages"] if m["kind"] == "text"] == [
        "members only"
    ]
    await asyncio.gather(sender.close(), laptop.close())


async def test_a_lost_joined_signal_is_caught_by_the_membership_check(
    checked: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = checked
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    room = await server.room(ada, "general")
    laptop = await server.connect(bob, resume={})
    restore = _lose_user_signals(server, monkeypatch)
    await server.join(bob, room)
    await restore()
    frame = await laptop.next("joined", timeout=5)
    assert frame["conversation"]["id"] == room
    sender = await server.connect(ada, resume={})
    await sender.send_text(room, "welcome")
    got = await laptop.wait_messages(room, 1, timeout=5)
    assert [m["content"] for m in got if m["kind"] == "text"] == ["welcome"]
    await asyncio.gather(sender.close(), laptop.close())


@pytest.mark.parametrize("other_socket", [False, True], ids=["first", "second"])
async def test_a_removal_while_a_socket_opens_reaches_it(
    server: Server, monkeypatch: pytest.MonkeyPatch, other_socket: bool
) -> None:
    """The handshake reads the user's conversations, then a removal commits before
    the socket registers. For the user's first socket the node does not listen for
    its signals yet; with another socket open it does, and the signal is handled
    before the new socket registers. Either way the removal reaches every socket."""
    ada_id, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    room = await server.room(ada, "general")
    await server.rest(bob, "POST", f"/api/conversations/{room}/join")
    others = [await server.connect(bob, resume={})] if other_socket else []
    store = server.services.store
    real_list = store.list_user_conversations
    actor = await store.get_user(ada_id)
    assert actor is not None
    kicked = False

    async def list_then_kick(user_id: int) -> Any:
        nonlocal kicked
        summaries = await real_list(user_id)
        if user_id == bob_id and not kicked:
            kicked = True  # another request's removal commits right after the read
            await server.services.conversations.remove_member(actor, room, bob_id)
            await asyncio.sleep(0.1)  # its signal is handled before the socket registers
        return summaries

    monkeypatch.setattr(store, "list_user_conversations", list_then_kick)
    laptop = await server.connect(bob, resume={})
    monkeypatch.setattr(store, "list_user_conversations", real_list)
    assert kicked
    for client in (*others, laptop):
        assert (await client.next("left", timeout=5))["conversation_id"] == room
    sender = await server.connect(ada, resume={})
    await sender.send_text(room, "after the kick")
    assert not await _received(laptop, room, "after the kick", 0.5)
    await asyncio.gather(sender.close(), laptop.close(), *(c.close() for c in others))


async def test_a_greeting_that_fails_holds_no_other_conversation_back(
    checked: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    from palaver.store.base import StoreUnavailable

    server = checked
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    first = await server.room(ada, "first")
    second = await server.room(ada, "second")
    laptop = await server.connect(bob, resume={})
    restore = _lose_user_signals(server, monkeypatch)
    for room in (first, second):
        await server.join(bob, room)
    await restore()
    store = server.services.store
    real_get = store.get_conversation
    failed = False

    async def fail_first(conversation_id: int, first: int = first, real_get: Any = real_get) -> Any:
        nonlocal failed
        if conversation_id == first and not failed:
            failed = True
            raise StoreUnavailable("database restarting")
        return await real_get(conversation_id)

    monkeypatch.setattr(store, "get_conversation", fail_first)
    greeted = await laptop.next("joined", timeout=5)
    assert greeted["conversation"]["id"] == second
    assert failed
    # The failed greeting let go of its conversation too: nothing stays held.
    sender = await server.connect(ada, resume={})
    for room in (first, second):
        await sender.send_text(room, f"hello {room}")
    for room in (first, second):
        got = await laptop.wait_messages(room, 1)
        assert [m["content"] for m in got if m["kind"] == "text"] == [f"hello {room}"]
    await asyncio.gather(sender.close(), laptop.close())


async def test_a_leave_during_the_join_greeting_sends_no_joined_after_left(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The join's signal is being handled (the hub reads the conversation to say
    ``joined``) when the leave's arrives: the socket gets ``left`` and no ``joined``
    after it."""
    from palaver.core.models import Role, now_ms

    _, ada = await server.user("ada")
    bob_id, bob = await server.user("bob")
    room = await server.room(ada, "general")
    laptop = await server.connect(bob, resume={})
    services = server.services
    store = services.store
    real_count = store.count_members
    counting = asyncio.Event()
    go_on = asyncio.Event()

    async def slow_count(conversation_id: int) -> int:
        counting.set()
        await go_on.wait()
        return await real_count(conversation_id)

    monkeypatch.setattr(store, "count_members", slow_count)
    member = await store.add_member(room, bob_id, Role.MEMBER, now_ms())
    assert member is not None
    await services.conversations._tell_user(bob_id, "joined", room, member.read_seq)
    await asyncio.wait_for(counting.wait(), 5)
    assert await store.remove_member(room, bob_id)
    await services.conversations._tell_user(bob_id, "left", room, None)
    assert (await laptop.next("left"))["conversation_id"] == room
    go_on.set()
    await asyncio.sleep(0.3)
    seen = []
    while not laptop.frames.empty():
        seen.append(laptop.frames.get_nowait()["type"])
    assert "joined" not in seen, seen
    await laptop.close()
