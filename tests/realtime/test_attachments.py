"""Attachments on sends (socket and REST), on SQLite and PostgreSQL: only the uploader
attaches, attaching shares the file with the conversation, outsiders see nothing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from palaver.config import Settings
from tests import media
from tests.realtime.conftest import Server, start_server


@pytest.fixture
async def any_server(engine_settings: Settings) -> AsyncIterator[Server]:
    async for value in start_server(engine_settings):
        yield value


async def upload(server: Server, token: str, data: bytes, name: str, **form: Any) -> Any:
    async with httpx.AsyncClient(base_url=server.base) as http:
        r = await http.post(
            "/api/upload",
            files={"file": (name, data, "application/octet-stream")},
            data={k: str(v) for k, v in form.items()},
            headers={"Authorization": f"Bearer {token}"},
        )
    assert r.status_code == 201, r.text
    return r.json()


async def fetch(server: Server, token: str, path: str) -> int:
    return (await server.rest(token, "GET", path)).status_code


async def test_attaching_shares_the_file_with_the_conversation(any_server: Server) -> None:
    server = any_server
    (_, ada), (_, bob), (_, eve) = [await server.user(n) for n in ("ada", "bob", "eve")]
    rid = await server.room(ada, "team")
    assert (await server.rest(bob, "POST", f"/api/conversations/{rid}/join")).status_code == 200
    photo = await upload(server, ada, media.image("JPEG", (64, 48), exif=True), "cat.jpg")
    doc = await upload(server, ada, media.PDF, "notes.pdf")
    for token in (bob, eve):
        assert await fetch(server, token, photo["url"]) == 404
    bob_socket = await server.connect(bob)
    ada_socket = await server.connect(ada)
    try:
        ack = await ada_socket.send_text(
            rid, "", attachments=[photo["id"], doc["id"]], client_msg_id="m1"
        )
        assert ack["type"] == "ack", ack
        frame = (await bob_socket.wait_messages(rid, 1))[-1]
        assert frame["content"] == ""
        assert frame["attachments"] == [
            {
                "id": photo["id"],
                "name": "cat.jpg",
                "type": "image/jpeg",
                "size": photo["size"],
                "width": 64,
                "height": 48,
                "thumbnail": True,
            },
            {
                "id": doc["id"],
                "name": "notes.pdf",
                "type": "application/pdf",
                "size": len(media.PDF),
            },
        ]
        # A retried send is the same message, attachments and all.
        again = await ada_socket.send_text(
            rid, "", attachments=[photo["id"], doc["id"]], client_msg_id="m1"
        )
        assert (again["duplicate"], again["message_id"]) == (True, ack["message_id"])
    finally:
        await bob_socket.close()
        await ada_socket.close()
    for path in (photo["url"], photo["thumbnail_url"], doc["url"]):
        assert await fetch(server, bob, path) == 200
        assert await fetch(server, eve, path) == 404
    # Over REST too, and history carries the attachments.
    note = await upload(server, bob, b"meeting at noon\n", "agenda.txt")
    sent = await server.rest(
        bob,
        "POST",
        f"/api/conversations/{rid}/messages",
        json={"content": "agenda", "attachments": [note["id"]]},
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["attachments"][0]["name"] == "agenda.txt"
    assert await fetch(server, ada, note["url"]) == 200
    history = await server.rest(ada, "GET", f"/api/conversations/{rid}/messages")
    with_files = [m for m in history.json()["messages"] if m.get("attachments")]
    assert [[a["id"] for a in m["attachments"]] for m in with_files] == [
        [photo["id"], doc["id"]],
        [note["id"]],
    ]


async def test_only_the_uploader_attaches_and_only_where_they_belong(any_server: Server) -> None:
    server = any_server
    (_, ada), (_, bob), (_, eve) = [await server.user(n) for n in ("ada", "bob", "eve")]
    rid = await server.room(ada, "team")
    other = await server.room(ada, "elsewhere")
    assert (await server.rest(bob, "POST", f"/api/conversations/{rid}/join")).status_code == 200
    adas = await upload(server, ada, media.image("PNG"), "a.png")
    bound_elsewhere = await upload(server, ada, media.image("PNG"), "b.png", conversation_id=other)
    eves = await upload(server, eve, media.image("PNG"), "e.png")

    bob_socket = await server.connect(bob)
    ada_socket = await server.connect(ada)
    eve_socket = await server.connect(eve)
    try:
        # Someone else's upload: refused as if it did not exist, nothing is sent.
        refused = await bob_socket.send_text(rid, "look", attachments=[adas["id"]])
        assert (refused["type"], refused["code"]) == ("error", "NOT_FOUND")
        assert await fetch(server, bob, adas["url"]) == 404
        # An upload bound to another conversation stays there.
        moved = await ada_socket.send_text(rid, "x", attachments=[bound_elsewhere["id"]])
        assert (moved["type"], moved["code"]) == ("error", "NOT_FOUND")
        # An outsider cannot bind their file to a conversation they are not in.
        outsider = await eve_socket.send_text(rid, "hi", attachments=[eves["id"]])
        assert (outsider["type"], outsider["code"]) == ("error", "NOT_FOUND")
        info = await server.rest(eve, "GET", f"{eves['url']}/info")
        assert info.json()["conversation_id"] is None
        too_many = await ada_socket.send_text(rid, "x", attachments=list(range(11)))
        assert (too_many["type"], too_many["code"]) == ("error", "INVALID_FORMAT")
        assert too_many["field"] == "attachments"
        empty = await ada_socket.send_text(rid, "  ", attachments=[])
        assert (empty["type"], empty["code"]) == ("error", "EMPTY_CONTENT")
    finally:
        for socket in (bob_socket, ada_socket, eve_socket):
            await socket.close()
    rest = await server.rest(
        bob, "POST", f"/api/conversations/{rid}/messages", json={"attachments": [adas["id"]]}
    )
    assert rest.status_code == 404
    history = await server.rest(ada, "GET", f"/api/conversations/{rid}/messages")
    assert [m for m in history.json()["messages"] if m["kind"] == "text"] == []
