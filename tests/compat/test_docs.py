"""The dialects are documented: AsyncAPI channels, and every frame in docs/compat.md."""

from __future__ import annotations

from pathlib import Path

import httpx
from tests.realtime.conftest import Server

from palaver.compat.asyncapi import DIALECTS

COMPAT_MD = Path(__file__).parents[2] / "docs" / "compat.md"


async def test_asyncapi_lists_every_dialect_and_its_references_resolve(server: Server) -> None:
    async with httpx.AsyncClient(base_url=server.base) as http:
        doc = (await http.get("/asyncapi.json")).json()
    addresses = {c["address"] for c in doc["channels"].values()}
    assert {
        "/ws",
        "/compat/monarchs/ws",
        "/compat/chat-service/ws",
        "/compat/mrezhen/ws",
        "/socket.io/",
    } <= addresses
    for operation in doc["operations"].values():
        for ref in operation["messages"]:
            _, _, channel, _, message = ref["$ref"].split("/")
            assert message in doc["channels"][channel]["messages"]


def test_compat_md_shows_every_frame_and_event() -> None:
    text = COMPAT_MD.read_text()
    for address, _, client, served in DIALECTS.values():
        assert address in text
        for name in [*client, *served]:
            assert f'"{name}"' in text, name
