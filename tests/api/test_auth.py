from __future__ import annotations

import time

import jwt
import pytest

from palaver.services.tokens import TokenService
from tests.api.conftest import CLIENT_IP, STRONG, Api


async def actions(api: Api) -> list[str]:
    return [e.action for e in await api.services.store.list_audit(limit=500)]


async def test_register_by_username_email_or_both(api: Api) -> None:
    by_name = await api.register("ada")
    assert by_name["user"]["username"] == "ada"
    assert by_name["user"]["email"] is None
    by_mail = await api.http.post(
        "/api/auth/register", json={"email": "Grace@Example.com", "password": STRONG}
    )
    assert by_mail.status_code == 201
    assert by_mail.json()["user"]["email"] == "grace@example.com"
    assert by_mail.json()["user"]["display_name"] == "grace"
    both = await api.register("linus", email="linus@example.com", display_name="Linus T")
    assert both["user"]["display_name"] == "Linus T"
    assert both["token"] == both["access_token"]
    assert "user.registered" in await actions(api)


async def test_register_needs_username_or_email(api: Api) -> None:
    response = await api.http.post("/api/auth/register", json={"password": STRONG})
    assert response.status_code == 422
    assert response.json()["error"]["code"] == "VALIDATION_ERROR"
    assert response.json()["error"]["field"] == "username"


async def test_duplicate_registration_is_409_naming_the_field(api: Api) -> None:
    await api.register("ada", email="ada@example.com")
    again = await api.http.post("/api/auth/register", json={"username": "ADA", "password": STRONG})
    assert again.status_code == 409
    assert again.json()["error"] == {
        "code": "CONFLICT",
        "message": again.json()["error"]["message"],
        "field": "username",
    }
    mail = await api.http.post(
        "/api/auth/register", json={"email": "ADA@example.com", "password": STRONG}
    )
    assert mail.status_code == 409
    assert mail.json()["error"]["field"] == "email"


@pytest.mark.parametrize(
    ("username", "says"),
    [
        ("all", "@all mentions everyone"),
        ("Room", "@room mentions everyone"),
        ("EVERYONE", "@everyone mentions everyone"),
        ("channel", "@channel mentions everyone"),
        ("all.", "@all mentions everyone"),
        ("ada.", "must not end with '.' or '-'"),
        ("bob-", "must not end with '.' or '-'"),
        ("carol.-", "must not end with '.' or '-'"),
    ],
)
async def test_usernames_nobody_could_mention_are_refused(
    api: Api, username: str, says: str
) -> None:
    response = await api.http.post(
        "/api/auth/register", json={"username": username, "password": STRONG}
    )
    assert response.status_code == 422, response.text
    error = response.json()["error"]
    assert (error["code"], error["field"]) == ("VALIDATION_ERROR", "username")
    assert says in error["message"]


async def test_every_accepted_username_can_be_mentioned(api: Api) -> None:
    names = ["alla", "rooms", "all_", "everyone2", "a.b", "x-y", "Zed_"]
    users = [await api.register(name) for name in names]
    auth = api.bearer(users[0]["token"])
    room = await api.http.post(
        "/api/conversations",
        json={"type": "group", "name": "all of us", "members": [u["user"]["id"] for u in users]},
        headers=auth,
    )
    assert room.status_code == 201, room.text
    text = " ".join(f"@{name}." for name in names) + " and @all"
    sent = await api.http.post(
        f"/api/conversations/{room.json()['id']}/messages", json={"content": text}, headers=auth
    )
    assert sent.status_code == 201, sent.text
    assert sent.json()["mentions"] == [name.lower() for name in names] + ["@room"]


@pytest.mark.parametrize(
    ("password", "needs"),
    [
        ("Short1a", "at least 8"),
        ("alllower1", "upper-case"),
        ("ALLUPPER1", "lower-case"),
        ("NoDigitsHere", "digit"),
    ],
)
async def test_password_policy(api: Api, password: str, needs: str) -> None:
    response = await api.http.post(
        "/api/auth/register", json={"username": "ada", "password": password}
    )
    assert response.status_code == 422
    body = response.json()["error"]
    assert body["code"] == "WEAK_PASSWORD"
    assert body["field"] == "password"
    assert needs in body["message"]


async def test_validation_errors_name_the_field(api: Api) -> None:
    response = await api.http.post("/api/auth/register", json={"username": "ada"})
    assert response.status_code == 422
    assert response.json()["error"]["field"] == "password"
    bad_json = await api.http.post(
        "/api/auth/register", content=b"{nope", headers={"content-type": "application/json"}
    )
    assert bad_json.status_code == 400
    assert bad_json.json()["error"]["code"] == "INVALID_JSON"


async def test_login_shapes_and_cookie(api: Api) -> None:
    await api.register("ada", email="ada@example.com")
    for body in ({"login": "ada"}, {"username": "ADA"}, {"email": "ada@example.com"}):
        response = await api.http.post("/api/auth/login", json={**body, "password": STRONG})
        assert response.status_code == 200, response.text
        data = response.json()
        assert data["token"] == data["access_token"]
        assert data["token_type"] == "bearer"
        assert data["expires_in"] == 900
        assert data["refresh_token"]
        assert data["user"]["username"] == "ada"
        cookie = response.headers["set-cookie"]
        assert "palaver_refresh=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
        assert "Path=/api/auth" in cookie
        assert "Secure" not in cookie  # plain HTTP in this test
    me = await api.http.get("/api/auth/me", headers=api.bearer(data["access_token"]))
    assert me.json()["email"] == "ada@example.com"


async def test_wrong_password_and_unknown_user_look_the_same(api: Api) -> None:
    await api.register("ada")
    wrong = await api.login("ada", "Wrong-pass1")
    unknown = await api.login("nobody", "Wrong-pass1")
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()
    assert (await actions(api)).count("login.failed") == 2


async def test_login_throttled_per_account(api: Api) -> None:
    await api.register("ada")
    for _ in range(5):
        assert (await api.login("ada", "Wrong-pass1")).status_code == 401
    throttled = await api.login("ada", STRONG)  # even the right password waits
    assert throttled.status_code == 429
    assert throttled.json()["error"]["code"] == "RATE_LIMITED"
    assert int(throttled.headers["retry-after"]) >= 1


async def test_refresh_rotates_and_reuse_revokes_family(api: Api) -> None:
    first = await api.register("ada")
    rotated = await api.http.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert rotated.status_code == 200
    second = rotated.json()
    assert second["refresh_token"] != first["refresh_token"]
    assert (await api.http.get("/api/auth/me", headers=api.bearer(second["token"]))).is_success
    reused = await api.http.post(
        "/api/auth/refresh", json={"refresh_token": first["refresh_token"]}
    )
    assert reused.status_code == 401
    # The whole family is gone: the newest refresh token and its access token too.
    newest = await api.http.post(
        "/api/auth/refresh", json={"refresh_token": second["refresh_token"]}
    )
    assert newest.status_code == 401
    me = await api.http.get("/api/auth/me", headers=api.bearer(second["token"]))
    assert me.status_code == 401
    assert me.json()["error"]["code"] == "SESSION_REVOKED"
    assert "refresh.reused" in await actions(api)


async def test_refresh_from_cookie(api: Api) -> None:
    await api.register("ada")
    login = await api.login("ada")
    assert login.status_code == 200
    # httpx keeps the cookie for /api/auth paths.
    refreshed = await api.http.post("/api/auth/refresh")
    assert refreshed.status_code == 200, refreshed.text
    assert refreshed.json()["user"]["username"] == "ada"
    api.http.cookies.clear()
    missing = await api.http.post("/api/auth/refresh")
    assert missing.status_code == 401


async def test_logout_revokes_access_and_refresh(api: Api) -> None:
    tokens = await api.register("ada")
    out = await api.http.post("/api/auth/logout", headers=api.bearer(tokens["token"]))
    assert out.status_code == 204
    me = await api.http.get("/api/auth/me", headers=api.bearer(tokens["token"]))
    assert me.status_code == 401
    again = await api.http.post(
        "/api/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert again.status_code == 401
    assert "session.revoked" in await actions(api)


async def test_sessions_list_and_revoke(api: Api) -> None:
    first = await api.register("ada")
    second = (await api.login("ada")).json()
    third = (await api.login("ada")).json()
    listing = await api.http.get("/api/auth/sessions", headers=api.bearer(first["token"]))
    sessions = listing.json()
    assert len(sessions) == 3
    assert sum(s["current"] for s in sessions) == 1
    assert {"device", "ip", "last_seen_at"} <= set(sessions[0])
    assert sessions[0]["ip"] == CLIENT_IP
    seen_by_second = await api.http.get("/api/auth/sessions", headers=api.bearer(second["token"]))
    second_id = next(s["id"] for s in seen_by_second.json() if s["current"])
    gone = await api.http.delete(
        f"/api/auth/sessions/{second_id}", headers=api.bearer(first["token"])
    )
    assert gone.status_code == 204
    assert (
        await api.http.get("/api/auth/me", headers=api.bearer(second["token"]))
    ).status_code == 401
    remaining = await api.http.get("/api/auth/sessions", headers=api.bearer(first["token"]))
    assert len(remaining.json()) == 2
    everywhere = await api.http.delete("/api/auth/sessions", headers=api.bearer(third["token"]))
    assert everywhere.status_code == 204
    for token in (first["token"], second["token"], third["token"]):
        assert (await api.http.get("/api/auth/me", headers=api.bearer(token))).status_code == 401


async def test_cannot_revoke_someone_elses_session(api: Api) -> None:
    ada = await api.register("ada")
    bob = await api.register("bob")
    bobs = await api.http.get("/api/auth/sessions", headers=api.bearer(bob["token"]))
    attempt = await api.http.delete(
        f"/api/auth/sessions/{bobs.json()[0]['id']}", headers=api.bearer(ada["token"])
    )
    assert attempt.status_code == 404
    assert (await api.http.get("/api/auth/me", headers=api.bearer(bob["token"]))).is_success


async def test_change_password_revokes_other_sessions(api: Api) -> None:
    first = await api.register("ada")
    other = (await api.login("ada")).json()
    wrong = await api.http.post(
        "/api/auth/password",
        json={"current_password": "Wrong-pass1", "new_password": "N3w-password"},
        headers=api.bearer(first["token"]),
    )
    assert wrong.status_code == 401
    assert wrong.json()["error"]["field"] == "current_password"
    ok = await api.http.post(
        "/api/auth/password",
        json={"current_password": STRONG, "new_password": "N3w-password"},
        headers=api.bearer(first["token"]),
    )
    assert ok.status_code == 204
    assert (await api.http.get("/api/auth/me", headers=api.bearer(first["token"]))).is_success
    revoked = await api.http.get("/api/auth/me", headers=api.bearer(other["token"]))
    assert revoked.status_code == 401
    assert (await api.login("ada")).status_code == 401
    assert (await api.login("ada", "N3w-password")).status_code == 200
    assert "password.changed" in await actions(api)


async def test_profile_edit_and_account_deletion(api: Api) -> None:
    tokens = await api.register("ada", email="ada@example.com")
    auth = api.bearer(tokens["token"])
    edited = await api.http.patch(
        "/api/auth/me",
        json={"display_name": "Ada L.", "avatar_url": "https://x.test/a.png"},
        headers=auth,
    )
    assert edited.json()["display_name"] == "Ada L."
    assert edited.json()["avatar_url"] == "https://x.test/a.png"
    bad = await api.http.patch("/api/auth/me", json={"avatar_url": "javascript:1"}, headers=auth)
    assert bad.status_code == 422
    assert bad.json()["error"]["field"] == "avatar_url"
    user_id = tokens["user"]["id"]
    refused = await api.http.request(
        "DELETE", "/api/auth/me", json={"password": "Wrong-pass1"}, headers=auth
    )
    assert refused.status_code == 401
    deleted = await api.http.request(
        "DELETE", "/api/auth/me", json={"password": STRONG}, headers=auth
    )
    assert deleted.status_code == 204
    assert (await api.http.get("/api/auth/me", headers=auth)).status_code == 401
    assert (await api.login("ada")).status_code == 401
    stored = await api.services.store.get_user(user_id)
    assert stored is not None
    assert stored.username is None
    assert stored.email is None
    assert stored.deleted_at is not None
    # The name and address are free again.
    await api.register("ada", email="ada@example.com")
    assert "user.deleted" in await actions(api)


@pytest.mark.parametrize(
    ("method", "path", "body", "action"),
    [
        (
            "POST",
            "/api/auth/password",
            {"current_password": "Wrong-pass1", "new_password": "N3w-password"},
            "password.change_failed",
        ),
        ("DELETE", "/api/auth/me", {"password": "Wrong-pass1"}, "user.delete_failed"),
    ],
)
async def test_a_wrong_password_to_change_it_or_delete_the_account_is_audited(
    api: Api, method: str, path: str, body: dict[str, str], action: str
) -> None:
    tokens = await api.register("ada")
    refused = await api.http.request(method, path, json=body, headers=api.bearer(tokens["token"]))
    assert refused.status_code == 401
    [entry] = await api.services.store.list_audit(action=action)
    assert (entry.actor_id, entry.ip) == (tokens["user"]["id"], CLIENT_IP)


async def test_tokens_are_checked_strictly(api: Api) -> None:
    tokens = await api.register("ada")
    services = api.services
    good = services.tokens.verify(tokens["token"])
    claims = jwt.decode(tokens["token"], options={"verify_signature": False})
    assert {"exp", "iat", "iss", "aud", "sub", "sid"} <= set(claims)
    assert claims["exp"] - claims["iat"] == 900

    async def status(token: str) -> tuple[int, str]:
        response = await api.http.get("/api/auth/me", headers=api.bearer(token))
        return response.status_code, response.json().get("error", {}).get("code", "")

    unsigned = jwt.encode(claims, key="", algorithm="none")
    assert await status(unsigned) == (401, "TOKEN_INVALID")
    settings = services.settings
    other_aud = TokenService(
        settings.secret_key, issuer=settings.jwt_issuer, audience="elsewhere", ttl=900
    ).issue(good.user_id, good.session_id)
    assert await status(other_aud) == (401, "TOKEN_INVALID")
    other_key = TokenService(
        "x" * 48, issuer=settings.jwt_issuer, audience=settings.jwt_audience, ttl=900
    ).issue(good.user_id, good.session_id)
    assert await status(other_key) == (401, "TOKEN_INVALID")
    expired = services.tokens.issue(good.user_id, good.session_id, now=time.time() - 3600)
    assert await status(expired) == (401, "TOKEN_EXPIRED")
    assert await status(tokens["token"][:-3] + "abc") == (401, "TOKEN_INVALID")
    missing = await api.http.get("/api/auth/me")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith("Bearer")


async def test_deactivation_revokes_sessions_and_tells_sockets(api: Api) -> None:
    from palaver.services import signals

    tokens = await api.register("ada")
    user_id = tokens["user"]["id"]
    heard: list[dict[str, object]] = []
    sub = await api.services.broker.subscribe(
        lambda _channel, payload: heard.append(signals.decode(payload)),
        [signals.user_channel(user_id)],
    )
    await api.services.auth.set_active(user_id, False, actor_id=None)
    await sub.close()
    me = await api.http.get("/api/auth/me", headers=api.bearer(tokens["token"]))
    assert me.status_code == 401
    assert heard
    assert heard[-1] == {"type": "revoke", "user_id": user_id, "sessions": None}
    login = await api.login("ada")
    assert login.status_code == 403
    assert login.json()["error"]["code"] == "ACCOUNT_DISABLED"
    assert "user.deactivated" in await actions(api)
