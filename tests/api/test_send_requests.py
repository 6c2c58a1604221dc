"""What a REST send and a new conversation take, as docs/protocol.md says: attachments
refused as on the socket, an empty client_msg_id that is no key, and one way to name
the other person of a direct conversation."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api.conftest import Api


async def _room(api: Api, name: str = "general") -> tuple[dict[str, str], int]:
    auth = api.bearer((await api.register("ada"))["token"])
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": name}, headers=auth
    )
    return auth, room.json()["id"]


@pytest.mark.parametrize("attachments", [[-1], list(range(11)), ["7"], [True], "7", {"id": 7}])
async def test_bad_attachments_are_invalid_format_as_on_the_socket(
    api: Api, attachments: Any
) -> None:
    auth, cid = await _room(api)
    response = await api.http.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "look", "attachments": attachments},
        headers=auth,
    )
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("INVALID_FORMAT", "attachments")
    history = await api.http.get(f"/api/conversations/{cid}/messages", headers=auth)
    assert [m for m in history.json()["messages"] if m["kind"] == "text"] == []


async def test_an_unknown_upload_is_still_not_found(api: Api) -> None:
    auth, cid = await _room(api)
    response = await api.http.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "look", "attachments": [12345]},
        headers=auth,
    )
    assert (response.status_code, response.json()["error"]["code"]) == (404, "NOT_FOUND")


async def test_an_empty_client_msg_id_is_no_key(api: Api) -> None:
    auth, cid = await _room(api)
    sent = []
    for text in ("one", "two"):
        response = await api.http.post(
            f"/api/conversations/{cid}/messages",
            json={"content": text, "client_msg_id": ""},
            headers=auth,
        )
        assert response.status_code == 201, response.text
        sent.append(response.json())
    assert [m["content"] for m in sent] == ["one", "two"]
    assert [m["duplicate"] for m in sent] == [False, False]
    assert [m["client_msg_id"] for m in sent] == [None, None]
    # A real key still answers a retry with the original message.
    for expected in (201, 200):
        response = await api.http.post(
            f"/api/conversations/{cid}/messages",
            json={"content": "three", "client_msg_id": "k1"},
            headers=auth,
        )
        assert response.status_code == expected
    history = await api.http.get(f"/api/conversations/{cid}/messages", headers=auth)
    texts = [m["content"] for m in history.json()["messages"] if m["kind"] == "text"]
    assert texts == ["one", "two", "three"]


async def test_a_direct_conversation_names_the_other_person_once(api: Api) -> None:
    auth = api.bearer((await api.register("ada"))["token"])
    bob = (await api.register("bob"))["user"]["id"]
    carol = (await api.register("carol"))["user"]["id"]
    for body in (
        {"user_id": bob, "userId": carol},
        {"type": "direct", "user_id": bob, "participantId": carol},
        {"userId": "bob", "participantId": "carol"},
        {"type": "room", "name": "general", "user_id": bob},
        {"type": "group", "name": "friends", "members": [bob], "userId": carol},
    ):
        response = await api.http.post("/api/conversations", json=body, headers=auth)
        assert response.status_code == 422, (body, response.text)
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "user_id"), body
    assert (await api.http.get("/api/conversations", headers=auth)).json() == []
    # The same user under two spellings is no ambiguity.
    same = await api.http.post(
        "/api/conversations", json={"user_id": bob, "userId": str(bob)}, headers=auth
    )
    assert same.status_code == 201, same.text
