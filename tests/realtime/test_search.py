"""Search over a real server, on SQLite and PostgreSQL: REST and the socket frame, the
indexer off the send path, and who may find what."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from palaver.config import Settings
from palaver.core.models import NewMessage, now_ms
from palaver.services.search import SearchIndexer
from palaver.store import create_store
from tests.realtime.conftest import Server, start_server


@pytest.fixture
def search_settings(engine_settings: Settings) -> Settings:
    return engine_settings.model_copy(
        update={"rate_messages_burst": 10_000, "rate_messages_per_second": 1e4}
    )


@pytest.fixture
async def search_server(search_settings: Settings) -> AsyncIterator[Server]:
    async for value in start_server(search_settings):
        yield value


async def search(server: Server, token: str, **params: Any) -> Any:
    response = await server.rest(token, "GET", "/api/search", params=params)
    assert response.status_code == 200, response.text
    return response.json()


async def eventually(server: Server, token: str, count: int, **params: Any) -> Any:
    """Search until ``count`` results show up (the index follows the send within about a
    second); a bounded wait, not a timing assertion."""
    async with asyncio.timeout(10):
        while True:
            found = await search(server, token, **params)
            if len(found["results"]) >= count:
                return found
            # Under the searches' rate limit: three a second after a burst of 30.
            await asyncio.sleep(0.2)


async def test_sent_message_is_found_with_highlights(search_server: Server) -> None:
    server = search_server
    _, token = await server.user("ada")
    room = await server.room(token, "deploys")
    ada = await server.connect(token)
    text = "Déployé: see https://staging.example.com/v2/Release_Notes.md about snake_case_name"
    ack = await ada.send_text(room, text)
    assert ack["type"] == "ack"
    found = await eventually(server, token, 1, q="DEPLOYE release_notes")
    [hit] = found["results"]
    assert found["next_cursor"] is None
    assert (hit["message_id"], hit["conversation_id"], hit["seq"]) == (
        ack["message_id"],
        room,
        ack["seq"],
    )
    assert (hit["sender"], hit["content"], hit["kind"]) == ("ada", text, "text")
    assert [text[s:e] for s, e in hit["highlights"]] == ["Déployé", "Release_Notes"]
    assert [s["text"] for s in hit["snippet"] if s["match"]] == ["Déployé", "Release_Notes"]
    assert "".join(s["text"] for s in hit["snippet"]) == text
    # The same search over the socket, answered with the command's id.
    reply = await ada.request(
        {"type": "search", "q": "staging.example.com/v2", "conversation_id": room},
        "search_results",
    )
    assert reply["type"] == "search_results"
    assert [r["message_id"] for r in reply["results"]] == [ack["message_id"]]
    assert reply["next_cursor"] is None
    # Identifiers and partial words, and nothing for what is not there.
    assert len((await search(server, token, q="case_na"))["results"]) == 1
    assert (await search(server, token, q="camelCase"))["results"] == []
    await ada.close()


async def test_short_query_and_bad_input(search_server: Server) -> None:
    server = search_server
    _, token = await server.user("ada")
    response = await server.rest(token, "GET", "/api/search", params={"q": "ab"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == "QUERY_TOO_SHORT"
    response = await server.rest(token, "GET", "/api/search", params={"q": "a b c"})
    assert response.json()["error"]["code"] == "QUERY_TOO_SHORT"
    response = await server.rest(token, "GET", "/api/search", params={"q": "hello", "cursor": "x"})
    assert (response.status_code, response.json()["error"]["field"]) == (422, "cursor")
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    ada = await server.connect(token)
    reply = await ada.request({"type": "search", "q": "ab"}, "search_results")
    assert (reply["type"], reply["code"]) == ("error", "QUERY_TOO_SHORT")
    reply = await ada.request({"type": "search", "q": 5}, "search_results")
    assert (reply["type"], reply["code"]) == ("error", "INVALID_FORMAT")
    # The socket stays usable.
    reply = await ada.request({"type": "search", "q": "hello"}, "search_results")
    assert reply["results"] == []
    await ada.close()


async def test_outsiders_never_find_and_leavers_stop_finding(search_server: Server) -> None:
    server = search_server
    _, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    secret_room = await server.room(ada_token, "secret")
    bob_room = await server.room(bob_token, "bobs")
    ada = await server.connect(ada_token)
    bob = await server.connect(bob_token)
    await ada.send_text(secret_room, "the launch code is swordfish")
    await bob.send_text(bob_room, "my swordfish recipe")
    await eventually(server, ada_token, 1, q="swordfish")
    found = await eventually(server, bob_token, 1, q="swordfish")
    assert [r["conversation_id"] for r in found["results"]] == [bob_room]
    # A foreign conversation looks exactly like a missing one.
    for cid in (secret_room, 999_999):
        response = await server.rest(
            bob_token, "GET", "/api/search", params={"q": "swordfish", "conversation_id": cid}
        )
        assert response.status_code == 404
        assert response.json()["error"]["code"] == "NOT_FOUND"
    reply = await bob.request(
        {"type": "search", "q": "swordfish", "conversation_id": secret_room}, "search_results"
    )
    assert reply["code"] == "NOT_FOUND"
    # Bob joins: he finds the room's messages (history is readable by members); he
    # leaves: they are gone from his results again. The join notice is not searchable.
    joined = await server.rest(bob_token, "POST", f"/api/conversations/{secret_room}/join")
    assert joined.status_code in (200, 201), joined.text
    found = await search(server, bob_token, q="swordfish")
    assert sorted(r["conversation_id"] for r in found["results"]) == sorted([secret_room, bob_room])
    assert (await search(server, bob_token, q="joined"))["results"] == []
    left = await server.rest(bob_token, "POST", f"/api/conversations/{secret_room}/leave")
    assert left.status_code == 204
    found = await search(server, bob_token, q="swordfish")
    assert [r["conversation_id"] for r in found["results"]] == [bob_room]
    assert (await search(server, bob_token, q="launch code"))["results"] == []
    assert bob_id
    await ada.close()
    await bob.close()


async def test_filters_and_pages(search_server: Server) -> None:
    server = search_server
    ada_id, ada_token = await server.user("ada")
    bob_id, bob_token = await server.user("bob")
    room = await server.room(ada_token, "general")
    other = await server.room(ada_token, "other")
    await server.rest(bob_token, "POST", f"/api/conversations/{room}/join")
    ada = await server.connect(ada_token)
    bob = await server.connect(bob_token)
    for i in range(5):
        last = await ada.send_text(room, f"status update {i}")
    # The clock must move past the last one, or both halves share a millisecond.
    middle = last["created_at"] + 1
    while now_ms() < middle:
        await asyncio.sleep(0.001)
    for i in range(5, 8):
        await bob.send_text(room, f"status update {i}")
    await ada.send_text(other, "status update elsewhere")
    everything = await eventually(server, ada_token, 9, q="status", limit=50)
    contents = [r["content"] for r in everything["results"]]
    assert contents[0] == "status update elsewhere"
    assert contents[1:] == [f"status update {i}" for i in reversed(range(8))]
    pages: list[str] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"q": "status", "conversation_id": room, "limit": 3}
        if cursor:
            params["cursor"] = cursor
        page = await search(server, ada_token, **params)
        pages += [r["content"] for r in page["results"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == contents[1:]
    by_bob = await search(server, ada_token, q="status", sender_id=bob_id)
    assert [r["sender_id"] for r in by_bob["results"]] == [bob_id] * 3
    since = await search(server, ada_token, q="status", after=middle, conversation_id=room)
    assert len(since["results"]) == 3
    until = await search(server, ada_token, q="status", before=middle, conversation_id=room)
    assert len(until["results"]) == 5
    assert ada_id
    await ada.close()
    await bob.close()


async def test_polling_finds_messages_committed_elsewhere(search_server: Server) -> None:
    """Another node's commits never wake this node's indexer: its poll finds them."""
    server = search_server
    _, token = await server.user("ada")
    room = await server.room(token, "general")
    url = server.settings.effective_database_url
    other = create_store(url, pool_size=1)
    await other.connect()
    try:
        # A second node's indexer on the same database, running alongside this one.
        indexer = SearchIndexer(other, poll=0.05)
        indexer.start()
        await other.append_messages([NewMessage(room, None, "written by another node")], now_ms())
        found = await eventually(server, token, 1, q="another node")
        assert found["results"][0]["content"] == "written by another node"
        await indexer.stop()
    finally:
        await other.close()


async def test_searches_are_rate_limited_per_user(search_server: Server) -> None:
    """A burst of searches, then a few a second: past it, ``RATE_LIMITED`` with the wait,
    over REST (429 and ``Retry-After``) and the socket; other users search on."""
    server = search_server
    _, ada = await server.user("ada")
    _, bob = await server.user("bob")
    await server.room(ada, "general")
    started = time.monotonic()
    responses = await asyncio.gather(
        *(server.rest(ada, "GET", "/api/search", params={"q": "deploy"}) for _ in range(60))
    )
    elapsed = time.monotonic() - started
    statuses = [r.status_code for r in responses]
    assert set(statuses) == {200, 429}, statuses
    # The burst of 30, and what refilled (three a second) while the rest were asked.
    assert 30 <= statuses.count(200) <= 30 + 3 * elapsed + 1, (statuses, elapsed)
    refused = next(r for r in responses if r.status_code == 429)
    error = refused.json()["error"]
    assert error["code"] == "RATE_LIMITED"
    assert error["retry_after"] > 0
    assert float(refused.headers["Retry-After"]) > 0
    client = await server.connect(ada)
    # Tokens come back three a second meanwhile: a few searches in a row take them.
    for _ in range(10):
        reply = await client.request({"type": "search", "q": "deploy"}, "search_results")
        if reply["type"] == "error":
            break
    assert reply["code"] == "RATE_LIMITED"
    assert reply["retry_after"] > 0
    assert (await search(server, bob, q="deploy"))["results"] == []
    # Counted with the other refusals (the socket's included).
    metrics = (await server.rest(ada, "GET", "/metrics")).text
    assert f'rate_limited_total{{scope="search"}} {statuses.count(429) + 1}.0' in metrics
    await client.close()


async def test_openapi_describes_search(search_server: Server) -> None:
    server = search_server
    _, token = await server.user("ada")
    document = (await server.rest(token, "GET", "/openapi.json")).json()
    operation = document["paths"]["/api/search"]["get"]
    schema = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/SearchOut"}
    assert {p["name"] for p in operation["parameters"]} >= {
        "q",
        "conversation_id",
        "sender_id",
        "after",
        "before",
        "limit",
        "cursor",
    }
    hit = document["components"]["schemas"]["SearchHitOut"]["properties"]
    assert {"highlights", "snippet", "content", "message_id"} <= set(hit)


async def test_a_node_can_leave_indexing_to_others(search_settings: Settings) -> None:
    """With ``search_indexer`` off a node serves searches but indexes nothing: what it
    commits waits until another node's indexer (here, one run by hand) takes it."""
    async for server in start_server(search_settings.model_copy(update={"search_indexer": False})):
        assert not server.services.indexer.running
        _, token = await server.user("ada")
        room = await server.room(token, "general")
        ada = await server.connect(token)
        await ada.send_text(room, "left for another node")
        assert await server.services.store.search_backlog()
        assert (await search(server, token, q="another"))["results"] == []
        other = SearchIndexer(server.services.store)
        assert await other.run_once() == 1
        found = await search(server, token, q="another")
        assert [r["content"] for r in found["results"]] == ["left for another node"]
        await ada.close()
