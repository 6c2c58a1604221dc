"""Operations behaviour of the assembled application (the pieces are tested alone too)."""

from __future__ import annotations

from pathlib import Path

from tests.api.conftest import STRONG, Api, open_api
from tests.isolated import isolated_settings


async def test_health_is_503_when_the_database_is_down(api: Api) -> None:
    assert (await api.http.get("/health")).status_code == 200
    # Background jobs first: one caught mid-query would hold a connection of the pool
    # that close() disposes, and leak it.
    services = api.services
    for job in (services.indexer, services.upload_expiry, services.retention):
        await job.stop()
    await services.moderation.close()
    await services.store.close()
    down = await api.http.get("/health")
    assert down.status_code == 503
    body = down.json()
    assert body["status"] == "degraded"
    assert body["checks"]["database"]["status"] != "ok"
    assert body["checks"]["broker"]["status"] == "ok"
    await api.services.store.connect()


async def test_refresh_cookie_is_secure_behind_a_trusted_tls_proxy(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path / "var",
        trusted_proxies=["203.0.113.0/24"],
    )
    async for api in open_api(settings):
        await api.register("ada")
        response = await api.http.post(
            "/api/auth/login",
            json={"login": "ada", "password": STRONG},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"},
        )
        assert response.status_code == 200
        assert "Secure" in response.headers["set-cookie"]
        assert "strict-transport-security" in response.headers
        sessions = await api.http.get(
            "/api/auth/sessions", headers=api.bearer(response.json()["token"])
        )
        assert sessions.json()[0]["ip"] == "198.51.100.4"


async def test_forwarded_headers_from_untrusted_peers_are_ignored(api: Api) -> None:
    await api.register("ada")
    response = await api.http.post(
        "/api/auth/login",
        json={"login": "ada", "password": STRONG},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"},
    )
    assert "Secure" not in response.headers["set-cookie"]
    sessions = await api.http.get(
        "/api/auth/sessions", headers=api.bearer(response.json()["token"])
    )
    assert {s["ip"] for s in sessions.json()} == {"203.0.113.7"}


async def test_cors_allow_list(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path / "var",
        cors_origins=["https://app.example.com"],
    )
    async for api in open_api(settings):
        allowed = await api.http.options(
            "/api/auth/login",
            headers={
                "Origin": "https://app.example.com",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert allowed.headers["access-control-allow-origin"] == "https://app.example.com"
        denied = await api.http.options(
            "/api/auth/login",
            headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
        )
        assert "access-control-allow-origin" not in denied.headers
