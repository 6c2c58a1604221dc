"""Seed 003's image messages: ``POST /api/upload`` with a multer-style ``image``
field, then ``message:send`` with the returned ``url`` (or the upload's id)."""

from __future__ import annotations

from typing import Any

import httpx
from tests import media
from tests.compat.conftest import Sio
from tests.realtime.conftest import Server


async def upload_image(server: Server, token: str, data: bytes, name: str) -> Any:
    """The seed's client: multer's ``upload.single("image")``."""
    async with httpx.AsyncClient(base_url=server.base) as http:
        r = await http.post(
            "/api/upload",
            files={"image": (name, data, "image/png")},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 201, r.text
    return r.json()


async def status(server: Server, token: str, path: str) -> int:
    return (await server.rest(token, "GET", path)).status_code


async def test_image_messages_over_socketio(server: Server) -> None:
    ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    _, eve_token = await server.user("eve")
    r = await server.rest(ada_token, "POST", "/api/conversations", json={"participantId": bob_id})
    cid = r.json()["id"]
    photo = await upload_image(server, ada_token, media.image("PNG", (80, 60)), "cat.png")
    assert photo["url"] == f"/api/uploads/{photo['id']}"
    assert (photo["type"], photo["width"], photo["height"]) == ("image/png", 80, 60)
    doc = await upload_image(server, ada_token, media.PDF, "notes.pdf")
    assert doc["type"] == "application/pdf"

    ada = await Sio.connect(server.base, ada_token)
    bob = await Sio.connect(server.base, bob_token)
    native = await server.connect(bob_token)
    try:
        ack = await ada.call(
            "message:send",
            {
                "conversationId": cid,
                "content": "",
                "messageType": "image",
                "fileUrl": photo["url"],
                "tempId": "img-1",
            },
        )
        assert ack["success"] is True, ack
        message = ack["message"]
        assert (message["message_type"], message["file_url"]) == ("image", photo["url"])
        assert message["content"] == ""
        assert message["attachments"][0]["id"] == photo["id"]
        assert await bob.next("message:new") == message
        # A native client sees the same attachment on the same message.
        frame = (await native.wait_messages(cid, 1))[-1]
        assert frame["message_id"] == message["id"]
        assert frame["attachments"] == message["attachments"]
        assert frame["attachments"][0] == {
            "id": photo["id"],
            "name": "cat.png",
            "type": "image/png",
            "size": photo["size"],
            "width": 80,
            "height": 60,
            "thumbnail": True,
        }
        assert await status(server, bob_token, message["file_url"]) == 200

        # A retry with the same tempId is the same message, file and all.
        retry = await ada.call(
            "message:send",
            {
                "conversationId": cid,
                "messageType": "image",
                "fileUrl": photo["url"],
                "tempId": "img-1",
            },
        )
        assert (retry["duplicate"], retry["message"]) == (True, message)

        # The absolute URL on this server's address, and uploadId; a PDF is a "file".
        by_url = await ada.call(
            "message:send",
            {"conversationId": cid, "content": "notes", "fileUrl": server.base + doc["url"]},
        )
        assert by_url["success"] is True, by_url
        assert (by_url["message"]["message_type"], by_url["message"]["file_url"]) == (
            "file",
            doc["url"],
        )
        assert (await bob.next("message:new"))["file_url"] == doc["url"]
        second = await upload_image(server, ada_token, media.image("JPEG"), "dog.jpg")
        by_id = await ada.call(
            "message:send",
            {"conversationId": cid, "content": "dog", "uploadId": second["id"]},
        )
        assert by_id["message"]["message_type"] == "image"
        plain = await ada.call("message:send", {"conversationId": cid, "content": "text"})
        assert (plain["message"]["message_type"], plain["message"]["file_url"]) == ("text", None)
        # The history over REST has the attachments too.
        history = await server.rest(bob_token, "GET", f"/api/conversations/{cid}/messages")
        ids = [[a["id"] for a in m.get("attachments") or []] for m in history.json()["messages"]]
        assert ids[-4:] == [[photo["id"]], [doc["id"]], [second["id"]], []]

        # Malformed or foreign file references are refused; nothing is sent.
        for bad, field in (
            ({"fileUrl": "https://elsewhere.example/api/uploads/1"}, "fileUrl"),
            ({"fileUrl": "/api/uploads/1/../../etc"}, "fileUrl"),
            ({"fileUrl": "javascript:alert(1)"}, "fileUrl"),
            ({"uploadId": "x1"}, "uploadId"),
            ({"messageType": "image"}, "fileUrl"),
            ({"messageType": "video", "uploadId": second["id"]}, "messageType"),
        ):
            refused = await ada.call("message:send", {"conversationId": cid, "content": "", **bad})
            assert refused["error"]["code"] == "INVALID_FORMAT", bad
            assert field in refused["error"]["message"], (bad, refused)
    finally:
        await native.close()
        await bob.close()

    # Eve, an outsider: she cannot fetch the file, nor send it (or her own) into the
    # conversation; both look like a missing conversation or file.
    eve = await Sio.connect(server.base, eve_token)
    try:
        for path in (photo["url"], photo["thumbnail_url"], doc["url"]):
            assert await status(server, eve_token, path) == 404
        stolen = await eve.call(
            "message:send", {"conversationId": cid, "content": "", "fileUrl": photo["url"]}
        )
        assert stolen["error"]["code"] == "NOT_FOUND"
        hers = await upload_image(server, eve_token, media.image("PNG"), "eve.png")
        pushed = await eve.call(
            "message:send", {"conversationId": cid, "content": "", "uploadId": hers["id"]}
        )
        assert pushed["error"]["code"] == "NOT_FOUND"
        info = await server.rest(eve_token, "GET", f"{hers['url']}/info")
        assert info.json()["conversation_id"] is None
        # Nor can Ada attach Eve's upload: someone else's file is "not found".
        taken = await ada.call(
            "message:send", {"conversationId": cid, "content": "", "uploadId": hers["id"]}
        )
        assert taken["error"]["code"] == "NOT_FOUND"
    finally:
        await eve.close()
        await ada.close()
    assert ada_id != bob_id
