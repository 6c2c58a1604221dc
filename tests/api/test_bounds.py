"""Numbers too large for a 64-bit column get a clear 400 over REST, on both engines,
never a 500 from the driver."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from palaver.config import Settings
from tests.api.conftest import Api, open_api

HUGE = 2**70


@pytest.fixture
async def engine_api(engine_settings: Settings) -> AsyncIterator[Api]:
    async for api in open_api(engine_settings):
        yield api


async def test_out_of_range_numbers_are_validation_errors(engine_api: Api) -> None:
    api = engine_api
    token = (await api.register("ada"))["access_token"]
    auth = api.bearer(token)
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "general"}, headers=auth
    )
    cid = room.json()["id"]
    sent = await api.http.post(
        f"/api/conversations/{cid}/messages", json={"content": "hi"}, headers=auth
    )
    mid = sent.json()["message_id"]
    probes = [
        ("GET", f"/api/search?q=hello&sender_id={HUGE}", None),
        ("GET", f"/api/messages/{mid}/thread?after={HUGE}", None),
        ("GET", f"/api/messages/{mid}/thread?before={HUGE}", None),
        ("POST", f"/api/messages/{mid}/thread/read", {"seq": HUGE}),
        ("POST", f"/api/conversations/{cid}/messages", {"content": "x", "reply_to_id": HUGE}),
        ("GET", f"/api/uploads/{2**64 - 1}", None),
        ("GET", f"/api/conversations/{HUGE}", None),
    ]
    for method, path, body in probes:
        response = await api.http.request(method, path, json=body, headers=auth)
        assert response.status_code in (400, 404, 422), (path, response.status_code)
        assert response.json()["error"]["code"] in {
            "VALIDATION_ERROR",
            "INVALID_FORMAT",
            "NOT_FOUND",
        }, (path, response.text)
