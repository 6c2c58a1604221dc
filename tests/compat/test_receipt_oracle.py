"""An outsider cannot tell a message of someone else's conversation from no message."""

from __future__ import annotations

from tests.compat.conftest import Sio
from tests.realtime.conftest import Server


async def test_message_read_by_an_outsider_looks_like_no_such_message(server: Server) -> None:
    _, ada = await server.user("ada")
    room = await server.room(ada, "private-ish")
    c = await server.connect(ada, resume={room: 0})
    mid = (await c.send_text(room, "secret"))["message_id"]
    await c.close()
    _, eve_token = await server.user("eve")
    eve = await Sio.connect(server.base, eve_token)
    hidden = await eve.call("message:read", {"messageId": mid})
    missing = await eve.call("message:read", {"messageId": mid + 1000})
    assert hidden["error"] == missing["error"]
    await eve.close()
