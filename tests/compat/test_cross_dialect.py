"""One message, every way of listening: the native protocol and the seed dialects share
one core, so a message reaches all of them once, with the same id."""

from __future__ import annotations

import asyncio

import pytest
import websockets
from tests.compat.conftest import Raw, Sio, ws_base
from tests.compat.test_monarchs import logged_in
from tests.realtime.conftest import Server

from palaver.core.models import ConversationKind


async def test_a_room_message_reaches_native_and_seeds_000_001_002(server: Server) -> None:
    native_id, native_token = await server.user("nat")
    rid = await server.room(native_token, "general")
    native = await server.connect(native_token, resume={})

    monarchs = await logged_in(server, "mon")
    assert (await monarchs.request({"type": "join_room", "room_name": "general"}, "success"))[
        "type"
    ] == "success"
    _, cs_token = await server.user("cs")
    chat_service = await Raw.connect(
        f"{ws_base(server)}/compat/chat-service/ws?token={cs_token}&roomId=general"
    )
    await chat_service.next("room_joined")
    _, sio_token = await server.user("sio")
    sio = await Sio.connect(server.base, sio_token)
    await sio.call("join_room", {"room": "general"})
    await native.wait_messages(rid, 3)  # the three "joined" notices and nothing else yet

    ack = await native.send_text(rid, "to every dialect", client_msg_id="x-1")
    assert ack["type"] == "ack"
    got_native = (await native.wait_messages(rid, 4))[-1]
    got_monarchs = await monarchs.next("message")
    got_chat = await chat_service.next("message")
    got_sio = await sio.next("message")
    assert got_native["message_id"] == ack["message_id"]
    assert got_chat["messageId"] == got_sio["id"] == ack["message_id"]
    for content in (
        got_native["content"],
        got_monarchs["content"],
        got_chat["content"],
        got_sio["content"],
    ):
        assert content == "to every dialect"
    assert got_monarchs["from"] == got_chat["username"] == "nat"
    assert got_chat["userId"] == native_id

    # And back: a seed 001 message reaches the native client in sequence order.
    await chat_service.send({"type": "message", "roomId": "general", "content": "back"})
    back = (await native.wait_messages(rid, 5))[-1]
    assert (back["sender"], back["content"], back["seq"]) == ("cs", "back", 5)
    assert (await monarchs.next("message"))["content"] == "back"
    assert (await sio.next("message"))["content"] == "back"

    # Exactly once each.
    await asyncio.sleep(0)
    assert [f["content"] for f in monarchs.seen if f["type"] == "message"] == [
        "to every dialect",
        "back",
    ]
    assert [d["content"] for e, d in sio.seen if e == "message"] == ["to every dialect", "back"]
    for sock in (native, monarchs, chat_service):
        await sock.close()
    await sio.close()


async def test_a_direct_message_reaches_native_and_seeds_004_003(server: Server) -> None:
    ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    bob_native = await server.connect(bob_token, resume={})
    bob_mrezhen = await Raw.connect(f"{ws_base(server)}/compat/mrezhen/ws?token={bob_token}")
    bob_scalable = await Sio.connect(server.base, bob_token)
    ada = await Raw.connect(f"{ws_base(server)}/compat/mrezhen/ws?token={ada_token}")

    # The conversation does not exist yet: the first message creates it.
    await ada.send({"type": "direct_message", "to": "bob", "content": "one for all"})
    ack = await ada.next("message_ack")
    assert ack["status"] == "delivered"
    joined = await bob_native.next("joined")
    cid = joined["conversation"]["id"]
    assert joined["conversation"]["type"] == ConversationKind.DIRECT.value
    await bob_scalable.call("conversation:join", {"conversationId": cid})

    got_native = (await bob_native.wait_messages(cid, 1))[0]
    got_mrezhen = await bob_mrezhen.next("direct_message")
    got_scalable = await bob_scalable.next("message:new")
    assert got_native["message_id"] == got_mrezhen["message"]["id"] == got_scalable["id"]
    assert got_native["message_id"] == ack["messageId"]
    assert got_mrezhen["message"]["from"] == got_scalable["sender_id"] == ada_id
    assert got_scalable["content"] == got_mrezhen["message"]["content"] == "one for all"

    # A reply from the seed 003 socket reaches the seed 004 sender.
    reply = await bob_scalable.call("message:send", {"conversationId": cid, "content": "got it"})
    assert reply["success"] is True
    answer = await ada.next("direct_message")
    assert (answer["message"]["from"], answer["message"]["content"]) == (bob_id, "got it")

    # The sender's own socket hears its message too (seed 003 broadcasts to the
    # conversation); the seed 004 socket of the same user does not (Mrezhen acks only).
    assert (await bob_scalable.next("message:new"))["content"] == "got it"
    assert len([f for f in bob_mrezhen.seen if f["type"] == "direct_message"]) == 1
    assert len([d for e, d in bob_scalable.seen if e == "message:new"]) == 2
    for sock in (bob_native, bob_mrezhen, ada):
        await sock.close()
    await bob_scalable.close()


async def test_ws_dialect_serves_a_seed_protocol_at_ws(settings: object) -> None:
    from tests.compat.conftest import start_server

    chosen = settings.model_copy(update={"ws_dialect": "mrezhen"})  # type: ignore[attr-defined]
    async for server in start_server(chosen):
        _, ada_token = await server.user("ada")
        await server.user("bob")
        sock = await Raw.connect(f"{server.ws_url}?token={ada_token}")
        await sock.send({"type": "direct_message", "to": "bob", "content": "via /ws"})
        assert (await sock.next("message_ack"))["status"] == "queued"
        await sock.close()
        with pytest.raises(websockets.InvalidStatus) as refused:
            await websockets.connect(server.ws_url)
        assert refused.value.response.status_code == 401
