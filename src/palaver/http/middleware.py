"""Pure ASGI middlewares for the HTTP app: proxies, request ids, metrics, headers,
request body limits.

They are plain ASGI callables rather than ``BaseHTTPMiddleware`` subclasses, which
run the app in a separate task, cost a task switch per request and buffer streaming
responses. :func:`install_middleware` adds them in the order they depend on::

    app = FastAPI(docs_url=None, redoc_url=None)
    install_middleware(app, settings, metrics)

Run uvicorn with ``proxy_headers=False`` (this module handles ``X-Forwarded-*`` with
the configured ``trusted_proxies``) and ``server_header=False`` (uvicorn writes its
``Server`` header below the ASGI layer, out of reach of middleware).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import time
import uuid
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import structlog
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.routing import Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from palaver.config import Settings
from palaver.core.errors import ErrorCode, PalaverError
from palaver.http.responses import JsonResponse
from palaver.metrics import Metrics

__all__ = [
    "CONTENT_SECURITY_POLICY",
    "HSTS",
    "REQUEST_ID_HEADER",
    "BodyLimitMiddleware",
    "MetricsMiddleware",
    "ProxyHeadersMiddleware",
    "RequestIdMiddleware",
    "SecurityHeadersMiddleware",
    "TrustedProxies",
    "client_ip",
    "cors_kwargs",
    "install_middleware",
    "request_id_from_scope",
    "route_template",
]

REQUEST_ID_HEADER = "X-Request-ID"
_VALID_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}")

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self' ws: wss:; font-src 'self'; object-src 'none'; base-uri 'self'; "
    "form-action 'self'; frame-ancestors 'none'"
)
# Helmet's defaults: https://helmetjs.github.io/ (X-XSS-Protection 0 because the
# legacy auditor it enabled could itself be abused to leak data).
_SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Origin-Agent-Cluster", "?1"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Content-Type-Options", "nosniff"),
    ("X-DNS-Prefetch-Control", "off"),
    ("X-Download-Options", "noopen"),
    ("X-Frame-Options", "SAMEORIGIN"),
    ("X-Permitted-Cross-Domain-Policies", "none"),
    ("X-XSS-Protection", "0"),
)
# One year, Helmet's default; browsers only honour it over https.
HSTS = "max-age=31536000; includeSubDomains"
_STRIPPED_HEADERS = frozenset({b"server", b"x-powered-by"})

# Method names come from the client; anything unusual shares one label so a scanner
# cannot mint time series.
_KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT"}
)
UNMATCHED = "unmatched"


# --- trusted proxies ---------------------------------------------------------------

_Network = ipaddress.IPv4Network | ipaddress.IPv6Network
_Address = ipaddress.IPv4Address | ipaddress.IPv6Address


class TrustedProxies:
    """A parsed allow-list of proxy addresses and networks (``10.0.0.0/8``, ``::1``).

    Raises :class:`ValueError` naming an entry that is neither an address nor a network.
    """

    def __init__(self, entries: Iterable[str]) -> None:
        networks: list[_Network] = []
        for entry in entries:
            try:
                networks.append(ipaddress.ip_network(entry.strip(), strict=False))
            except ValueError:
                raise ValueError(
                    f"trusted proxy {entry!r} is neither an IP address nor a CIDR network"
                ) from None
        self.networks = tuple(networks)

    def __bool__(self) -> bool:
        return bool(self.networks)

    def __contains__(self, address: object) -> bool:
        ip = _parse_ip(address) if isinstance(address, str) else None
        if ip is None:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped
        return any(ip in network for network in self.networks)


def _parse_ip(value: str) -> _Address | None:
    value = value.strip()
    if value.startswith("["):  # [2001:db8::1]:443
        value = value[1 : value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:  # 203.0.113.7:51234
        value = value.split(":", 1)[0]
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _header_values(scope: Scope, name: bytes) -> list[str]:
    # Repeated headers are one comma-separated list (RFC 9110 section 5.3).
    items: list[str] = []
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            items.extend(part.strip() for part in value.decode("latin-1").split(","))
    return [item for item in items if item]


def _peer(scope: Scope) -> str:
    client = scope.get("client")
    return str(client[0]) if client else ""


def _forwarded_client(scope: Scope, trusted: TrustedProxies) -> str | None:
    hops = _header_values(scope, b"x-forwarded-for")
    if not hops:
        return None
    # Each proxy appends the address it received the request from, so the rightmost
    # hop that is not one of ours is the client; anything left of it is client-written.
    nearest_trusted: str | None = None
    for hop in reversed(hops):
        ip = _parse_ip(hop)
        if ip is None:
            # A proxy of ours wrote something that is not an address: believe no
            # further, and blame the request on that proxy.
            return nearest_trusted
        if str(ip) not in trusted:
            return str(ip)
        nearest_trusted = str(ip)
    return nearest_trusted


@functools.lru_cache(maxsize=16)
def _parsed(entries: tuple[str, ...]) -> TrustedProxies:
    # Callers pass settings.trusted_proxies on every connection; parse each list once.
    return TrustedProxies(entries)


def client_ip(scope: Scope, trusted: Sequence[str] | TrustedProxies) -> str:
    """The client's address: the direct peer, or ``X-Forwarded-For``'s if the peer is trusted.

    ``trusted`` lists proxy addresses or CIDR networks; pass a :class:`TrustedProxies`
    to parse them once. Returns ``""`` when the server gave no peer address (a test
    transport or a Unix socket without proxy headers).
    """
    proxies = trusted if isinstance(trusted, TrustedProxies) else _parsed(tuple(trusted))
    peer = _peer(scope)
    if not proxies or peer not in proxies:
        return peer
    return _forwarded_client(scope, proxies) or peer


def _forwarded_scheme(scope: Scope) -> str | None:
    values = _header_values(scope, b"x-forwarded-proto")
    if not values:
        return None
    # The last value is the one our own nearest proxy vouches for.
    proto = values[-1].lower()
    if proto not in ("http", "https", "ws", "wss"):
        return None
    secure = proto in ("https", "wss")
    if scope["type"] == "websocket":
        return "wss" if secure else "ws"
    return "https" if secure else "http"


class ProxyHeadersMiddleware:
    """Rewrite ``scope["client"]`` and ``scope["scheme"]`` from trusted proxies' headers.

    Headers from any other peer are ignored, so clients cannot spoof their address
    for rate limits and logs. Works for HTTP and WebSocket scopes.
    """

    def __init__(self, app: ASGIApp, trusted: Sequence[str] | TrustedProxies) -> None:
        self.app = app
        self.trusted = trusted if isinstance(trusted, TrustedProxies) else TrustedProxies(trusted)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.trusted and scope["type"] in ("http", "websocket"):
            peer = _peer(scope)
            if peer in self.trusted:
                # Changed in place rather than copied: uvicorn's access log reads the
                # same dict, so it then logs the real client too.
                forwarded = _forwarded_client(scope, self.trusted)
                if forwarded is not None:
                    scope["client"] = (forwarded, 0)
                scheme = _forwarded_scheme(scope)
                if scheme is not None:
                    scope["scheme"] = scheme
        await self.app(scope, receive, send)


# --- request ids -------------------------------------------------------------------


def request_id_from_scope(scope: Scope) -> str | None:
    """The id :class:`RequestIdMiddleware` gave this request, if it ran."""
    state = scope.get("state")
    value = state.get("request_id") if isinstance(state, dict) else None
    return value if isinstance(value, str) else None


class RequestIdMiddleware:
    """Give each request an id, log it with every line, and echo it as ``X-Request-ID``.

    A client's (or proxy's) ``X-Request-ID`` is kept when it is 1-64 characters of
    ``[A-Za-z0-9._-]``, so ids cannot smuggle text into logs; otherwise a new one is
    made. Handlers read it as ``request.state.request_id``.
    """

    def __init__(self, app: ASGIApp, header: str = REQUEST_ID_HEADER) -> None:
        self.app = app
        self.header = header.lower().encode("latin-1")

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket"):
            await self.app(scope, receive, send)
            return
        request_id = self._incoming(scope) or uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        raw_id = request_id.encode("ascii")

        async def send_with_id(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v) for k, v in message.get("headers", ()) if k.lower() != self.header
                ]
                headers.append((self.header, raw_id))
                message["headers"] = headers
            await send(message)

        # bound_contextvars restores the previous values on exit, which matters when
        # the server (or a test transport) reuses one context for several requests.
        with structlog.contextvars.bound_contextvars(request_id=request_id):
            await self.app(scope, receive, send_with_id if scope["type"] == "http" else send)

    def _incoming(self, scope: Scope) -> str | None:
        for key, value in scope.get("headers", ()):
            if key.lower() == self.header:
                candidate: str = value.decode("latin-1")
                return candidate if _VALID_REQUEST_ID.fullmatch(candidate) else None
        return None


# --- metrics -----------------------------------------------------------------------


def _mount_prefix(scope: Scope) -> str:
    # Inside a Mount, root_path has grown by the mount's path; app_root_path keeps the
    # server's own root_path, which is not part of any route template.
    if "app_root_path" not in scope:
        return ""
    root_path: str = scope.get("root_path", "")
    app_root_path: str = scope["app_root_path"]
    return root_path[len(app_root_path) :].rstrip("/")


def route_template(scope: Scope) -> str | None:
    """The template of the route that handled ``scope`` (``/api/users/{user_id}``).

    Call it after routing (from ``send``, when the response starts). ``None`` means no
    route matched. Inside a mounted app whose own path has parameters the mount's part
    is the concrete path, so keep parameters out of mount paths.
    """
    prefix = _mount_prefix(scope)
    # FastAPI (0.16x) keeps included routers nested: scope["route"] holds the path
    # relative to the innermost router, and only its private effective route context
    # has the full template with every prefix. The metrics tests fail if that moves.
    fastapi_scope = scope.get("fastapi")
    if isinstance(fastapi_scope, dict):
        context = fastapi_scope.get("effective_route_context")
        path = getattr(context, "path_format", None)
        if isinstance(path, str):
            return prefix + path
    route: Any = scope.get("route")
    path = getattr(route, "path_format", None)
    if isinstance(path, str) and not isinstance(route, Mount):
        return prefix + path
    if prefix:
        # Inside a mounted app with no routes of its own (StaticFiles). scope["route"]
        # is then a Mount, possibly an outer one that FastAPI did not replace, or
        # nothing; root_path holds the whole chain of mount paths either way.
        return prefix + "/{path}"
    return None


class MetricsMiddleware:
    """Count HTTP requests and time them by method, route template and status.

    Requests that match no route share the route label ``unmatched``, so scanning for
    random URLs cannot grow the number of time series.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500
        route: str | None = None
        started = False

        async def send_recording(message: Message) -> None:
            nonlocal status, route, started
            if message["type"] == "http.response.start":
                status = message["status"]
                # Read now: FastAPI restores some routing keys once the handler returns.
                route = route_template(scope)
                started = True
            await send(message)

        try:
            await self.app(scope, receive, send_recording)
        finally:
            if not started:
                route = route_template(scope)
            method = scope.get("method", "")
            method = method if method in _KNOWN_METHODS else "OTHER"
            label = route or UNMATCHED
            self.metrics.http_requests.labels(method, label, str(status)).inc()
            self.metrics.http_request_duration.labels(method, label).observe(
                time.perf_counter() - start
            )


# --- security headers --------------------------------------------------------------


class SecurityHeadersMiddleware:
    """Add Helmet's default security headers to every HTTP response.

    A header the response already has is left alone, so a route can loosen or tighten
    its own ``Content-Security-Policy``. ``Strict-Transport-Security`` is only sent
    over https (after :class:`ProxyHeadersMiddleware`). ``Server`` and
    ``X-Powered-By`` are removed.
    """

    def __init__(
        self,
        app: ASGIApp,
        content_security_policy: str = CONTENT_SECURITY_POLICY,
        hsts: str = HSTS,
    ) -> None:
        self.app = app
        self.headers = [
            (name.lower().encode("latin-1"), value.encode("latin-1"))
            for name, value in (
                ("Content-Security-Policy", content_security_policy),
                *_SECURITY_HEADERS,
            )
        ]
        self.https_headers = [*self.headers, (b"strict-transport-security", hsts.encode())]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        defaults = self.https_headers if scope.get("scheme") == "https" else self.headers

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [
                    (k, v)
                    for k, v in message.get("headers", ())
                    if k.lower() not in _STRIPPED_HEADERS
                ]
                present = {k.lower() for k, _ in headers}
                headers.extend(item for item in defaults if item[0] not in present)
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


# --- request body limits -----------------------------------------------------------


_HTTP1 = frozenset({"1.0", "1.1"})


class _BodyTooLarge(Exception):
    """Raised from ``receive`` once a body without a declared length passes the limit."""


def _declared_length(scope: Scope) -> tuple[int | None, bool]:
    """The ``Content-Length`` (``None`` when absent or not a number) and whether the
    body comes with a ``Transfer-Encoding``."""
    length: int | None = None
    encoded = False
    for key, value in scope["headers"]:
        if key == b"content-length":
            length = int(value) if value.isdigit() else None
        elif key == b"transfer-encoding":
            encoded = True
    return length, encoded


class BodyLimitMiddleware:
    """Refuse request bodies larger than ``limit`` bytes: 413 ``BODY_TOO_LARGE``.

    A ``Content-Length`` past the limit is answered at once, before anything is read
    (uvicorn sends no ``100 Continue`` then, so a client that asked for one never sends
    the body). A body of declared length within the limit passes untouched: the server
    delivers no more than it declared. A body without one (chunked) is counted as it
    arrives and cut off at the chunk that passes the limit, so at most ``limit`` bytes
    reach the application. Refusals close the connection rather than read on. A request
    without a body (most of them) costs one pass over its headers.

    ``paths`` gives exact paths a limit of their own; ``None`` leaves the path to its
    route, which must bound what it reads (as ``POST /api/upload`` does while streaming
    to disk).
    """

    def __init__(
        self, app: ASGIApp, limit: int, paths: Mapping[str, int | None] | None = None
    ) -> None:
        self.app = app
        self.limit = limit
        self.paths = dict(paths or {})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit: int | None = self.limit
        if self.paths:
            path: str = scope["path"]
            root: str = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            limit = self.paths.get(path, limit)
        if limit is None:
            await self.app(scope, receive, send)
            return
        declared, encoded = _declared_length(scope)
        if declared is not None and declared > limit:
            await _refuse(scope, receive, send, limit)
            return
        # In HTTP/1 a request with neither header has no body (RFC 9112, section 6.3).
        if not encoded and (declared is not None or scope.get("http_version") in _HTTP1):
            await self.app(scope, receive, send)
            return
        await self._counted(scope, receive, send, limit)

    async def _counted(self, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
        received = 0
        refused = False
        started = False

        async def receive_counted() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    refused = True
                    raise _BodyTooLarge
            return message

        async def send_unless_refused(message: Message) -> None:
            nonlocal started
            if refused and not started:
                # The application's own answer to the failed read (FastAPI makes it a
                # 400): the 413 below goes instead.
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive_counted, send_unless_refused)
        except Exception:
            if not refused or started:
                raise
        if refused and not started:
            await _refuse(scope, receive, send, limit)


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    error = PalaverError(
        ErrorCode.BODY_TOO_LARGE,
        f"the request body is larger than {limit} bytes",
        details={"max_bytes": limit},
    )
    # Closing spares reading (and discarding) the rest of a body nobody wants.
    response = JsonResponse(
        {"error": error.to_dict()}, error.http_status, headers={"Connection": "close"}
    )
    await response(scope, receive, send)


# --- CORS and wiring ---------------------------------------------------------------


def cors_kwargs(settings: Settings) -> dict[str, Any]:
    """Keyword arguments for Starlette's ``CORSMiddleware`` from ``settings.cors_origins``.

    Explicit origins may send credentials (cookies, ``Authorization``); the wildcard
    ``*`` never may, because browsers refuse that combination and it would let any
    site act as the user.
    """
    origins = [origin.rstrip("/") for origin in settings.cors_origins]
    wildcard = "*" in origins
    return {
        "allow_origins": ["*"] if wildcard else origins,
        "allow_credentials": bool(origins) and not wildcard,
        "allow_methods": ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"],
        "allow_headers": ["Authorization", "Content-Type", REQUEST_ID_HEADER],
        "expose_headers": [REQUEST_ID_HEADER, "Retry-After"],
        "max_age": 600,
    }


def install_middleware(
    app: Starlette,
    settings: Settings,
    metrics: Metrics,
    *,
    body_limits: Mapping[str, int | None] | None = None,
) -> None:
    """Add this module's middlewares and CORS to a Starlette/FastAPI ``app``.

    Outermost first: proxy headers (so everything after sees the real client and
    scheme), request id (so every later log line carries it), security headers,
    metrics, CORS, the body limit (``settings.body_max_bytes``; ``body_limits`` as
    :class:`BodyLimitMiddleware`'s ``paths``), inside CORS so its refusals are readable
    cross-origin. Starlette's ``ServerErrorMiddleware`` still wraps them all, so an
    unhandled exception's 500 goes out without these headers.
    """
    # add_middleware puts each new middleware outside the previous ones.
    app.add_middleware(BodyLimitMiddleware, limit=settings.body_max_bytes, paths=body_limits)
    if settings.cors_origins:
        app.add_middleware(CORSMiddleware, **cors_kwargs(settings))
    app.add_middleware(MetricsMiddleware, metrics=metrics)
    app.add_middleware(SecurityHeadersMiddleware)
    app.add_middleware(RequestIdMiddleware)
    app.add_middleware(ProxyHeadersMiddleware, trusted=TrustedProxies(settings.trusted_proxies))
