"""Error codes of the HTTP side: methods a path does not take, plain requests to
socket paths, and malformed search queries answer like every other bad request."""

from __future__ import annotations

import pytest

from palaver.compat import chat_service, monarchs, mrezhen
from tests.api.conftest import Api


async def test_wrong_method_is_method_not_allowed(api: Api) -> None:
    response = await api.http.put("/api/rooms")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "METHOD_NOT_ALLOWED"


@pytest.mark.parametrize("path", ["/ws", monarchs.PATH, chat_service.PATH, mrezhen.PATH])
async def test_plain_get_of_a_socket_path_is_upgrade_required(api: Api, path: str) -> None:
    response = await api.http.get(path)
    assert response.status_code == 426
    assert response.json()["error"]["code"] == "UPGRADE_REQUIRED"
    assert response.headers["upgrade"] == "websocket"
    assert (await api.http.get("/no-such-path")).json()["error"]["code"] == "NOT_FOUND"


async def test_search_query_errors_match_other_query_errors(api: Api) -> None:
    auth = api.bearer((await api.register("ada"))["token"])
    other = await api.http.get("/api/rooms", params={"limit": "x"}, headers=auth)
    assert (other.status_code, other.json()["error"]["code"]) == (422, "VALIDATION_ERROR")
    for params in (
        {},
        {"q": "hello", "cursor": "bogus"},
        {"q": " ".join(f"word{i}" for i in range(20))},
    ):
        response = await api.http.get("/api/search", params=params, headers=auth)
        assert response.status_code == 422, (params, response.text)
        assert response.json()["error"]["code"] == "VALIDATION_ERROR"
        assert response.json()["error"]["field"] in ("q", "cursor")
    short = await api.http.get("/api/search", params={"q": "ab"}, headers=auth)
    assert (short.status_code, short.json()["error"]["code"]) == (400, "QUERY_TOO_SHORT")
