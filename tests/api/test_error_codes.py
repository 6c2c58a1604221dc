"""Error codes of the HTTP side: methods a path does not take, plain requests to
socket paths, and malformed search queries answer like every other bad request; a body
that is missing or not a JSON object, and an upload in the wrong form field, say so."""

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


async def test_a_missing_or_non_object_body_names_the_body(api: Api) -> None:
    auth = api.bearer((await api.register("ada"))["token"])
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "general"}, headers=auth
    )
    cid = room.json()["id"]
    for method, path, kwargs in (
        ("POST", f"/api/conversations/{cid}/messages", {}),
        ("DELETE", "/api/auth/me", {}),
        ("POST", "/api/auth/register", {"data": {"username": "bob", "password": "x"}}),
        ("POST", "/api/auth/register", {"json": ["bob"]}),
        ("POST", "/api/auth/login", {"content": b"login=ada"}),
    ):
        response = await api.http.request(method, path, headers=auth, **kwargs)
        assert response.status_code == 422, (path, response.text)
        error = response.json()["error"]
        assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "body"), (path, error)
        assert "JSON object" in error["message"], error
    # Not JSON at all, declared as JSON: the wire-format code.
    broken = await api.http.post(
        "/api/auth/login", content=b"{", headers={"Content-Type": "application/json"}
    )
    assert (broken.status_code, broken.json()["error"]["code"]) == (400, "INVALID_JSON")
    # A field of the body still names that field.
    short = await api.http.post("/api/auth/register", json={"username": "bob"})
    assert short.json()["error"]["field"] == "password"


async def test_an_upload_in_another_form_field_says_which_fields_are_read(api: Api) -> None:
    auth = api.bearer((await api.register("ada"))["token"])
    response = await api.http.post(
        "/api/upload", files={"attachment": ("a.txt", b"x" * 1000, "text/plain")}, headers=auth
    )
    assert response.status_code == 422
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "file")
    assert "'attachment'" in error["message"]
    assert "named file (or image)" in error["message"]
