from __future__ import annotations

from tests.api.conftest import Api


async def test_search_by_prefix_of_username_display_name_or_email(api: Api) -> None:
    ada = await api.register("ada", email="countess@example.com", display_name="Lovelace")
    await api.register("adam")
    await api.register("bob", display_name="Adalbert")
    auth = api.bearer(ada["token"])

    async def names(query: str, **params: object) -> list[str]:
        response = await api.http.get(
            "/api/users/search", params={"query": query, **params}, headers=auth
        )
        assert response.status_code == 200, response.text
        return [u["username"] for u in response.json()]

    assert await names("ad") == ["ada", "adam", "bob"]
    assert await names("love") == ["ada"]
    assert await names("COUNT") == ["ada"]
    assert await names("ad", limit=2) == ["ada", "adam"]
    assert await names("ad", limit=2, offset=2) == ["bob"]
    assert await names("zzz") == []
    # E-mail addresses are matched but never shown to other users.
    response = await api.http.get("/api/users/search", params={"query": "ada"}, headers=auth)
    assert "email" not in response.json()[0]


async def test_search_needs_auth_and_a_query(api: Api) -> None:
    ada = await api.register("ada")
    assert (await api.http.get("/api/users/search", params={"query": "a"})).status_code == 401
    missing = await api.http.get("/api/users/search", headers=api.bearer(ada["token"]))
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "query"


async def test_get_user(api: Api) -> None:
    ada = await api.register("ada", display_name="Ada")
    auth = api.bearer(ada["token"])
    found = await api.http.get(f"/api/users/{ada['user']['id']}", headers=auth)
    assert found.json()["display_name"] == "Ada"
    missing = await api.http.get("/api/users/999999", headers=auth)
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "NOT_FOUND"
