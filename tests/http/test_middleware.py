from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from fastapi import APIRouter, FastAPI, Request, WebSocket
from fastapi.responses import PlainTextResponse
from starlette.applications import Starlette
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from palaver.config import Settings
from palaver.http.middleware import (
    CONTENT_SECURITY_POLICY,
    TrustedProxies,
    client_ip,
    cors_kwargs,
    install_middleware,
    request_id_from_scope,
    route_template,
)
from palaver.metrics import Metrics

PROXY = "10.1.2.3"


def make_app(settings: Settings, metrics: Metrics) -> FastAPI:
    app = FastAPI(docs_url=None, redoc_url=None)
    install_middleware(app, settings, metrics)
    users = APIRouter(prefix="/users")

    @users.get("/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    api = APIRouter(prefix="/api")
    api.include_router(users)
    app.include_router(api)

    @app.get("/whoami")
    async def whoami(request: Request) -> dict[str, object]:
        return {
            "client": request.client.host if request.client else None,
            "scheme": request.url.scheme,
            "request_id": request.state.request_id,
            "from_scope": request_id_from_scope(request.scope),
            "logged_request_id": structlog.contextvars.get_contextvars().get("request_id"),
        }

    @app.get("/branded")
    async def branded() -> PlainTextResponse:
        return PlainTextResponse(
            "x",
            headers={
                "Server": "leaky/1.0",
                "X-Powered-By": "PHP",
                "Content-Security-Policy": "sandbox",
            },
        )

    @app.get("/boom")
    async def boom() -> None:
        raise RuntimeError("boom")

    @app.websocket("/ws")
    async def ws(websocket: WebSocket) -> None:
        await websocket.accept()
        client = websocket.client.host if websocket.client else None
        await websocket.send_json({"client": client, "scheme": websocket.url.scheme})
        await websocket.close()

    return app


@pytest.fixture
def metrics() -> Metrics:
    return Metrics()


@pytest.fixture
def app(settings: Settings, metrics: Metrics) -> FastAPI:
    configured = settings.model_copy(
        update={
            "trusted_proxies": ["10.0.0.0/8", "2001:db8::1"],
            "cors_origins": ["https://chat.example.com/"],
        }
    )
    return make_app(configured, metrics)


def client_for(
    app: FastAPI, peer: str = "203.0.113.9", base_url: str = "http://palaver.test"
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, client=(peer, 40000), raise_app_exceptions=False)
    return httpx.AsyncClient(transport=transport, base_url=base_url)


# --- request id ----------------------------------------------------------------------


async def test_request_id_is_generated_bound_and_echoed(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/whoami")
    request_id = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", request_id)
    body = response.json()
    assert body["request_id"] == request_id
    assert body["from_scope"] == request_id
    assert body["logged_request_id"] == request_id
    assert "request_id" not in structlog.contextvars.get_contextvars()


async def test_valid_incoming_request_id_is_kept(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/whoami", headers={"X-Request-ID": "lb-7f3a.9_x"})
    assert response.headers["x-request-id"] == "lb-7f3a.9_x"
    assert response.json()["request_id"] == "lb-7f3a.9_x"


@pytest.mark.parametrize("bad", ["a" * 65, "id with spaces", "evil\u00e9", "a\\nb", "<x>"])
async def test_invalid_incoming_request_id_is_replaced(app: FastAPI, bad: str) -> None:
    async with client_for(app) as client:
        response = await client.get("/whoami", headers={b"X-Request-ID": bad.encode()})
    assert response.headers["x-request-id"] != bad
    assert re.fullmatch(r"[0-9a-f]{32}", response.headers["x-request-id"])


async def test_request_id_header_is_not_duplicated(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/api/users/1", headers={"X-Request-ID": "abc"})
    assert response.headers.get_list("x-request-id") == ["abc"]


# --- security headers ----------------------------------------------------------------

EXPECTED_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "origin-agent-cluster": "?1",
    "referrer-policy": "no-referrer",
    "x-content-type-options": "nosniff",
    "x-dns-prefetch-control": "off",
    "x-download-options": "noopen",
    "x-frame-options": "SAMEORIGIN",
    "x-permitted-cross-domain-policies": "none",
    "x-xss-protection": "0",
}


async def test_security_headers_on_every_response(app: FastAPI) -> None:
    async with client_for(app) as client:
        responses = [
            await client.get("/api/users/1"),
            await client.get("/no/such/page"),
            await client.get("/api/users/not-a-number"),
        ]
    for response in responses:
        for name, value in EXPECTED_HEADERS.items():
            assert response.headers.get(name) == value, (response.url, name)
        assert "strict-transport-security" not in response.headers
    csp = responses[0].headers["content-security-policy"]
    assert "script-src 'self';" in csp
    assert "frame-ancestors 'none'" in csp
    assert "unsafe-inline" not in csp


async def test_hsts_only_over_https(app: FastAPI) -> None:
    async with client_for(app, base_url="https://palaver.test") as client:
        response = await client.get("/api/users/1")
    assert response.headers["strict-transport-security"] == "max-age=31536000; includeSubDomains"


async def test_hsts_when_a_trusted_proxy_terminated_tls(app: FastAPI) -> None:
    headers = {"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.4"}
    async with client_for(app, peer=PROXY) as client:
        trusted = await client.get("/whoami", headers=headers)
        nonsense = await client.get("/whoami", headers={"X-Forwarded-Proto": "gopher"})
    async with client_for(app) as client:
        spoofed = await client.get("/whoami", headers=headers)
    assert trusted.json()["scheme"] == "https"
    assert nonsense.json()["scheme"] == "http"
    assert "strict-transport-security" in trusted.headers
    assert spoofed.json()["scheme"] == "http"
    assert "strict-transport-security" not in spoofed.headers


async def test_server_identity_removed_and_route_headers_kept(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/branded")
    assert "server" not in response.headers
    assert "x-powered-by" not in response.headers
    assert response.headers.get_list("content-security-policy") == ["sandbox"]
    assert response.headers["x-frame-options"] == "SAMEORIGIN"


# --- trusted proxies -----------------------------------------------------------------


def scope_with(peer: str | None, *headers: tuple[str, str]) -> dict[str, object]:
    return {
        "type": "http",
        "client": (peer, 1234) if peer else None,
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers],
    }


@pytest.mark.parametrize(
    ("peer", "forwarded", "expected"),
    [
        # An untrusted peer's header is ignored whatever it says.
        ("203.0.113.9", ["1.2.3.4"], "203.0.113.9"),
        # A trusted proxy: the rightmost hop that is not ours is the client.
        (PROXY, ["198.51.100.4"], "198.51.100.4"),
        (PROXY, ["6.6.6.6, 198.51.100.4"], "198.51.100.4"),
        (PROXY, ["6.6.6.6, 198.51.100.4, 10.9.9.9"], "198.51.100.4"),
        (PROXY, ["6.6.6.6", "198.51.100.4, 10.9.9.9"], "198.51.100.4"),
        # Every hop is ours: the leftmost is as far as we can see.
        (PROXY, ["10.0.0.7, 10.9.9.9"], "10.0.0.7"),
        # Ports and brackets are dropped.
        (PROXY, ["198.51.100.4:5555"], "198.51.100.4"),
        (PROXY, ["[2001:db8::7]:443"], "2001:db8::7"),
        # Garbage from our own proxy: blame the nearest trusted hop, never the garbage.
        (PROXY, ["<script>, 10.9.9.9"], "10.9.9.9"),
        (PROXY, ["unknown"], PROXY),
        (PROXY, [], PROXY),
        ("2001:db8::1", ["2001:db8::99"], "2001:db8::99"),
        ("::ffff:10.1.2.3", ["198.51.100.4"], "198.51.100.4"),
    ],
)
def test_client_ip(peer: str, forwarded: list[str], expected: str) -> None:
    scope = scope_with(peer, *(("X-Forwarded-For", value) for value in forwarded))
    trusted = ["10.0.0.0/8", "2001:db8::1"]
    assert client_ip(scope, trusted) == expected
    assert client_ip(scope, TrustedProxies(trusted)) == expected


def test_client_ip_without_trusted_proxies_or_peer() -> None:
    assert client_ip(scope_with(PROXY, ("X-Forwarded-For", "1.2.3.4")), []) == PROXY
    assert client_ip(scope_with(None, ("X-Forwarded-For", "1.2.3.4")), ["0.0.0.0/0"]) == ""


def test_trusted_proxies_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match=r"'proxy\.local'"):
        TrustedProxies(["10.0.0.1", "proxy.local"])


async def test_proxy_middleware_rewrites_client_only_from_trusted_peers(app: FastAPI) -> None:
    headers = {"X-Forwarded-For": "6.6.6.6, 198.51.100.4"}
    async with client_for(app, peer=PROXY) as client:
        via_proxy = (await client.get("/whoami", headers=headers)).json()
    async with client_for(app, peer="203.0.113.9") as client:
        direct = (await client.get("/whoami", headers=headers)).json()
    assert via_proxy["client"] == "198.51.100.4"
    assert direct["client"] == "203.0.113.9"


async def websocket_hello(app: FastAPI, peer: str, headers: dict[str, str]) -> Any:
    """Open /ws on ``app`` as ``peer`` and return the first JSON frame it sends."""
    scope = {
        "type": "websocket",
        "asgi": {"version": "3.0"},
        "scheme": "ws",
        "http_version": "1.1",
        "path": "/ws",
        "raw_path": b"/ws",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"palaver.test")]
        + [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": (peer, 50000),
        "server": ("palaver.test", 80),
        "subprotocols": [],
        "state": {},
    }
    inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    inbox.put_nowait({"type": "websocket.connect"})
    sent: list[Message] = []

    async def receive() -> Message:
        return await inbox.get()

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "websocket.close":
            inbox.put_nowait({"type": "websocket.disconnect", "code": 1000})

    await asyncio.wait_for(app(scope, receive, send), 5)
    frames = [m for m in sent if m["type"] == "websocket.send"]
    return json.loads(frames[0]["text"])


async def test_proxy_middleware_rewrites_websocket_scopes(app: FastAPI) -> None:
    headers = {"X-Forwarded-For": "198.51.100.4", "X-Forwarded-Proto": "https"}
    via_proxy = await websocket_hello(app, PROXY, headers)
    direct = await websocket_hello(app, "203.0.113.9", headers)
    assert via_proxy == {"client": "198.51.100.4", "scheme": "wss"}
    assert direct == {"client": "203.0.113.9", "scheme": "ws"}


# --- metrics -------------------------------------------------------------------------


def sample(metrics: Metrics, line_start: str) -> float | None:
    body, _ = metrics.render()
    for line in body.decode().splitlines():
        if line.startswith(line_start):
            return float(line.rsplit(" ", 1)[1])
    return None


async def test_metrics_use_route_templates(app: FastAPI, metrics: Metrics) -> None:
    async with client_for(app) as client:
        await client.get("/api/users/41")
        await client.get("/api/users/42")
        await client.get("/api/users/forty-three")
        await client.get("/random/path/7")
        await client.post("/api/users/1")
        await client.request("BREW", "/api/users/1")
        await client.get("/boom")
    counted = 'http_requests_total{method="GET",route="/api/users/{user_id}",status="200"}'
    assert sample(metrics, counted) == 2.0
    assert sample(metrics, counted.replace("200", "422")) == 1.0
    assert sample(metrics, 'http_requests_total{method="GET",route="unmatched"') == 1.0
    assert sample(metrics, 'http_requests_total{method="POST",route="/api/users/{user_id}"') == 1
    assert sample(metrics, 'http_requests_total{method="OTHER",route="/api/users/{user_id}"') == 1
    assert sample(metrics, 'http_requests_total{method="GET",route="/boom",status="500"}') == 1
    duration = 'http_request_duration_seconds_count{method="GET",route="/api/users/{user_id}"}'
    assert sample(metrics, duration) == 3.0
    body, _ = metrics.render()
    assert b"/api/users/41" not in body
    assert b"/random/path" not in body


async def test_route_template_inside_mounts(tmp_path: Path) -> None:
    (tmp_path / "logo.png").write_bytes(b"png")

    def ok(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    child = FastAPI()
    child.mount("/files", StaticFiles(directory=tmp_path))

    @child.get("/items/{item_id}")
    async def item(item_id: str) -> str:
        return item_id

    parent = Starlette(
        routes=[
            Mount("/child", app=child),
            Mount("/plain", routes=[Route("/p/{q}", ok)]),
            Mount("/assets", app=StaticFiles(directory=tmp_path)),
        ]
    )
    seen: list[str | None] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        async def spy(message: Message) -> None:
            if message["type"] == "http.response.start":
                seen.append(route_template(scope))
            await send(message)

        await parent(scope, receive, spy)

    transport = httpx.ASGITransport(recorder, root_path="/prefix")
    async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
        for path in (
            "/prefix/child/items/9",
            "/prefix/child/files/logo.png",
            "/prefix/plain/p/1",
            "/prefix/assets/logo.png",
        ):
            assert (await client.get(path)).status_code == 200, path
        assert (await client.get("/prefix/nothing")).status_code == 404
    assert seen == [
        "/child/items/{item_id}",
        "/child/files/{path}",
        "/plain/p/{q}",
        "/assets/{path}",
        None,
    ]


# --- body limits ---------------------------------------------------------------------


async def test_body_limit_paths_hold_under_a_root_path(settings: Settings) -> None:
    configured = settings.model_copy(
        update={"body_max_bytes": 100_000, "cors_origins": ["https://chat.example.com"]}
    )
    app = FastAPI(docs_url=None, redoc_url=None)
    install_middleware(app, configured, Metrics(), body_limits={"/free": None, "/wide": 200_000})

    async def size(request: Request) -> dict[str, int]:
        return {"size": len(await request.body())}

    for path in ("/free", "/wide", "/other"):
        app.add_api_route(path, size, methods=["POST"])
    transport = httpx.ASGITransport(app, root_path="/chat")
    async with httpx.AsyncClient(transport=transport, base_url="http://palaver.test") as client:

        async def post(path: str, size: int) -> httpx.Response:
            return await client.post(
                f"/chat{path}", content=b"x" * size, headers={"Origin": "https://chat.example.com"}
            )

        assert (await post("/free", 300_000)).json() == {"size": 300_000}
        assert (await post("/wide", 150_000)).json() == {"size": 150_000}
        assert (await post("/wide", 200_001)).json()["error"]["max_bytes"] == 200_000
        refused = await post("/other", 100_001)
        assert refused.status_code == 413
        assert refused.json()["error"]["code"] == "BODY_TOO_LARGE"
        # Inside CORS: a browser page of an allowed origin can read why.
        assert refused.headers["access-control-allow-origin"] == "https://chat.example.com"
        assert (await post("/other", 100_000)).json() == {"size": 100_000}


# --- CORS ----------------------------------------------------------------------------


async def test_cors_allows_only_listed_origins(app: FastAPI) -> None:
    preflight = {
        "Access-Control-Request-Method": "POST",
        "Access-Control-Request-Headers": "authorization, content-type",
    }
    async with client_for(app) as client:
        allowed = await client.options(
            "/api/users/1", headers={"Origin": "https://chat.example.com", **preflight}
        )
        denied = await client.options(
            "/api/users/1", headers={"Origin": "https://evil.example", **preflight}
        )
        simple = await client.get("/api/users/1", headers={"Origin": "https://chat.example.com"})
        foreign = await client.get("/api/users/1", headers={"Origin": "https://evil.example"})
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert denied.status_code == 400
    assert "access-control-allow-origin" not in denied.headers
    assert simple.headers["access-control-allow-origin"] == "https://chat.example.com"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert "access-control-allow-origin" not in foreign.headers


def test_cors_kwargs_never_pair_wildcard_with_credentials(settings: Settings) -> None:
    wildcard = cors_kwargs(settings.model_copy(update={"cors_origins": ["*", "https://a.b"]}))
    assert wildcard["allow_origins"] == ["*"]
    assert wildcard["allow_credentials"] is False
    explicit = cors_kwargs(settings.model_copy(update={"cors_origins": ["https://a.b/"]}))
    assert explicit["allow_origins"] == ["https://a.b"]
    assert explicit["allow_credentials"] is True
    assert cors_kwargs(settings)["allow_credentials"] is False


async def test_no_cors_headers_without_origins(settings: Settings) -> None:
    app = make_app(settings, Metrics())
    async with client_for(app) as client:
        response = await client.get("/api/users/1", headers={"Origin": "https://chat.example.com"})
    assert "access-control-allow-origin" not in response.headers
