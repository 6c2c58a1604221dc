"""Integers past what the database can hold are refused as bad input, not a bug."""

from __future__ import annotations

from .conftest import Server

TOO_BIG = 2**63


async def test_out_of_range_integers_are_invalid_format(server: Server) -> None:
    _, token = await server.user("ada")
    room = await server.room(token, "general")
    c = await server.connect(token, resume={room: 0})
    ack = await c.send_text(room, "hello world")
    mid = ack["message_id"]
    for frame, field in (
        (
            {"type": "send", "conversation_id": room, "content": "x", "reply_to_id": TOO_BIG},
            "reply_to_id",
        ),
        ({"type": "send", "conversation_id": TOO_BIG, "content": "x"}, "conversation_id"),
        ({"type": "search", "q": "hello", "before": TOO_BIG}, "before"),
        ({"type": "thread_read", "root_id": mid, "seq": TOO_BIG}, "seq"),
        ({"type": "thread", "root_id": mid, "before": TOO_BIG}, "before"),
        ({"type": "react", "message_id": TOO_BIG, "emoji": "👍"}, "message_id"),
        ({"type": "history", "conversation_id": room, "before": TOO_BIG}, "before"),
        ({"type": "send", "conversation_id": room, "attachments": [TOO_BIG]}, "attachments"),
    ):
        got = await c.request(frame)
        assert (got["type"], got["code"], got.get("field")) == ("error", "INVALID_FORMAT", field), (
            got
        )
    # The socket stays usable.
    assert (await c.send_text(room, "still here"))["type"] == "ack"
    await c.close()
