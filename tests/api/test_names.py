"""Display names, room and group names and topics refuse bidirectional overrides and
other invisible controls on every way in, and keep every script and emoji."""

from __future__ import annotations

from typing import Any

from tests.api.conftest import STRONG, Api

# "I want", with a zero-width non-joiner (escaped: ruff takes its letters for Latin).
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"
FAMILY = "\U0001f468\u200d\U0001f469\u200d\U0001f467"


def refused(response: Any, field: str, char: str) -> None:
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", field)
    assert f"U+{ord(char):04X}" in error["message"]
    # Read by people (the web client shows it as is): words, not the field's key.
    assert error["message"].startswith(field.replace("_", " ") + " holds ")


async def test_display_names(api: Api) -> None:
    spoof = await api.http.post(
        "/api/auth/register",
        json={"username": "ada", "password": STRONG, "display_name": "Ada\u202eevil"},
    )
    refused(spoof, "display_name", "\u202e")
    ada = await api.register("ada", display_name=f"Ada {FAMILY}")
    assert ada["user"]["display_name"] == f"Ada {FAMILY}"
    auth = api.bearer(ada["token"])
    for control in ("\u2067", "\u200f", "\u061c", "\u200b", "\x07"):
        patched = await api.http.patch(
            "/api/auth/me", json={"display_name": f"Ada{control}L"}, headers=auth
        )
        refused(patched, "display_name", control)
    for name in ("عدة لوفليس", "עדה לאבלייס", "エイダ・ラブレス", PERSIAN):
        patched = await api.http.patch("/api/auth/me", json={"display_name": name}, headers=auth)
        assert patched.status_code == 200, patched.text
        assert patched.json()["display_name"] == name
    me = await api.http.get("/api/auth/me", headers=auth)
    assert me.json()["display_name"] == PERSIAN


async def test_room_and_group_names_and_topics(api: Api) -> None:
    ada = await api.register("ada")
    bob = await api.register("bob")
    auth = api.bearer(ada["token"])

    async def create(**body: Any) -> Any:
        return await api.http.post("/api/conversations", json=body, headers=auth)

    refused(await create(type="room", name="gen\u202eeral"), "name", "\u202e")
    refused(await create(type="room", name="lobby", topic="hi \u2066there"), "topic", "\u2066")
    refused(
        await create(type="group", name="\u200etrio", members=[bob["user"]["id"]]),
        "name",
        "\u200e",
    )
    room = await create(type="room", name="غرفة", topic=f"line one\nline {FAMILY}")
    assert room.status_code == 201, room.text
    assert (room.json()["name"], room.json()["topic"]) == ("غرفة", f"line one\nline {FAMILY}")
    cid = room.json()["id"]
    renamed = await api.http.patch(
        f"/api/conversations/{cid}", json={"name": "x\u202ay"}, headers=auth
    )
    refused(renamed, "name", "\u202a")
    topic = await api.http.patch(
        f"/api/conversations/{cid}", json={"topic": "a\u2029b"}, headers=auth
    )
    refused(topic, "topic", "\u2029")
    kept = await api.http.get(f"/api/conversations/{cid}", headers=auth)
    assert kept.json()["name"] == "غرفة"
