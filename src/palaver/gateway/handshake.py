"""The HTTP side of the lean WebSocket path: the request view, the handler's verdicts and
the bytes of every handshake response.

A :class:`Request` keeps only the raw request head (plus the transport, for the peer
address) and parses it on demand, so an idle connection does not carry a dict of
header strings.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import functools
import hashlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from http import HTTPStatus
from urllib.parse import parse_qsl, unquote

import orjson

__all__ = ["Accept", "HandshakeError", "Headers", "Reject", "Request"]

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class Headers(Mapping[str, str]):
    """Read-only, case-insensitive request headers.

    ``headers["origin"]`` and ``headers.get("Origin")`` return the first value;
    :meth:`get_all` returns every value in order.
    """

    __slots__ = ("_items",)

    def __init__(self, items: Sequence[tuple[str, str]]) -> None:
        self._items = [(name.lower(), value) for name, value in items]

    def __getitem__(self, key: str) -> str:
        key = key.lower()
        for name, value in self._items:
            if name == key:
                return value
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(dict.fromkeys(name for name, _ in self._items))

    def __len__(self) -> int:
        return len({name for name, _ in self._items})

    def get_all(self, key: str) -> list[str]:
        """All values of header ``key``, in the order the client sent them."""
        key = key.lower()
        return [value for name, value in self._items if name == key]

    def raw_items(self) -> list[tuple[str, str]]:
        """Every ``(lowercased name, value)`` pair, in order."""
        return list(self._items)

    def __repr__(self) -> str:
        return f"Headers({self._items!r})"


@functools.lru_cache(maxsize=64)
def _slim_head(method: str, target: str) -> bytes:
    # Shared by every socket on the same path: one bytes object, not one per socket.
    return f"{method} {target} HTTP/1.1\r\n\r\n".encode("latin-1")


class Request:
    """The WebSocket upgrade request, as seen by ``GatewayHandler.authorize``.

    The same object stays reachable as ``Connection.request`` for the connection's
    life. Properties parse the stored head on each call; keep a result if you need it
    in a hot path.
    """

    __slots__ = ("_head", "_headers", "_transport")

    def __init__(self, head: bytes, transport: asyncio.BaseTransport | None = None) -> None:
        """``head`` is the request line and headers, up to and including the blank line."""
        self._head = head
        self._transport = transport
        self._headers: Headers | None = None

    @property
    def method(self) -> str:
        return self._head.split(b" ", 1)[0].decode("ascii", "replace")

    @property
    def target(self) -> str:
        """The raw request target, for example ``/ws?token=abc``."""
        line = self._head.split(b"\r\n", 1)[0]
        parts = line.split(b" ")
        return parts[1].decode("latin-1") if len(parts) == 3 else ""

    @property
    def path(self) -> str:
        """The percent-decoded path, without the query string."""
        path = self.target.partition("?")[0]
        return unquote(path) if "%" in path else path

    @property
    def query_string(self) -> str:
        return self.target.partition("?")[2]

    @property
    def query(self) -> dict[str, str]:
        """Query parameters; the first value wins when a name repeats."""
        params: dict[str, str] = {}
        for name, value in parse_qsl(self.query_string, keep_blank_values=True):
            params.setdefault(name, value)
        return params

    def query_all(self, name: str) -> list[str]:
        """Every value of query parameter ``name``, in order."""
        pairs = parse_qsl(self.query_string, keep_blank_values=True)
        return [value for key, value in pairs if key == name]

    @property
    def headers(self) -> Headers:
        if self._headers is not None:
            return self._headers
        items = []
        for line in self._head.split(b"\r\n")[1:]:
            name, sep, value = line.partition(b":")
            if sep:
                items.append((name.strip().decode("latin-1"), value.strip().decode("latin-1")))
        return Headers(items)

    @property
    def origin(self) -> str | None:
        return self.headers.get("origin")

    @property
    def subprotocols(self) -> list[str]:
        """Subprotocols offered in ``Sec-WebSocket-Protocol``, in the client's order."""
        offered = ",".join(self.headers.get_all("sec-websocket-protocol"))
        return [token.strip() for token in offered.split(",") if token.strip()]

    @property
    def client(self) -> tuple[str, int] | None:
        """The TCP peer ``(host, port)``; behind a proxy this is the proxy."""
        if self._transport is None:
            return None
        peer = self._transport.get_extra_info("peername")
        return (str(peer[0]), int(peer[1])) if isinstance(peer, tuple) else None

    def forget_head(self) -> None:
        """Keep only the method and path: an open connection needs no more, and its
        headers and query (a token, say) would cost memory on every idle socket."""
        self._head = _slim_head(self.method, self.target.partition("?")[0])
        self._headers = None

    def cache_headers(self, keep: bool) -> None:
        """Keep parsed headers around while ``keep`` (the handshake), drop them after."""
        self._headers = self.headers if keep else None

    def __repr__(self) -> str:
        return f"<Request {self.method} {self.path}>"


@dataclass(frozen=True, slots=True)
class Accept:
    """Complete the handshake.

    ``state`` is stored as ``Connection.state`` for the handler's own use (user id,
    session...). ``subprotocol`` must be one of ``request.subprotocols`` (otherwise the
    client gets a 500). ``headers`` are added to the 101 response.
    """

    state: object = None
    subprotocol: str | None = None
    headers: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True, slots=True)
class Reject:
    """Refuse the handshake with an HTTP response; no WebSocket frame is ever sent.

    The body is JSON in the REST error shape ``{"error": {"code", "message"}}``.
    """

    status: int = 403
    code: str = "FORBIDDEN"
    message: str = "Forbidden"
    headers: Sequence[tuple[str, str]] = ()

    def __post_init__(self) -> None:
        if not 400 <= self.status < 600:
            raise ValueError(f"a rejection needs a 4xx or 5xx status, not {self.status}")

    def render(self, default_headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
        """The complete HTTP response, ``Connection: close`` included."""
        body = orjson.dumps({"error": {"code": self.code, "message": self.message}})
        return http_response(
            self.status,
            body,
            content_type=b"application/json",
            headers=[*default_headers, *encode_headers(self.headers)],
        )


class HandshakeError(Exception):
    """An upgrade request that is not a valid WebSocket handshake."""

    def __init__(self, status: int, message: str, headers: Sequence[tuple[bytes, bytes]] = ()):
        super().__init__(message)
        self.status = status
        self.message = message
        self.headers = headers

    def render(self, default_headers: Sequence[tuple[bytes, bytes]] = ()) -> bytes:
        return http_response(
            self.status, self.message.encode(), headers=[*default_headers, *self.headers]
        )


def check_upgrade(request: Request) -> str:
    """Validate the RFC 6455 opening handshake; return the ``Sec-WebSocket-Accept`` value.

    Raises :class:`HandshakeError` with the status to answer with.
    """
    headers = request.headers
    if request.method != "GET":
        raise HandshakeError(405, "WebSocket handshake must use GET", [(b"allow", b"GET")])
    upgrade = [t.strip().lower() for v in headers.get_all("upgrade") for t in v.split(",")]
    connection = [t.strip().lower() for v in headers.get_all("connection") for t in v.split(",")]
    if "websocket" not in upgrade or "upgrade" not in connection:
        raise HandshakeError(400, "Missing WebSocket upgrade headers")
    if headers.get_all("sec-websocket-version") != ["13"]:
        raise HandshakeError(
            426, "Unsupported WebSocket version", [(b"sec-websocket-version", b"13")]
        )
    keys = headers.get_all("sec-websocket-key")
    try:
        if len(keys) != 1 or len(base64.b64decode(keys[0], validate=True)) != 16:
            raise ValueError(keys)
    except (ValueError, binascii.Error):
        raise HandshakeError(400, "Invalid Sec-WebSocket-Key") from None
    digest = hashlib.sha1(keys[0].encode("ascii") + _GUID).digest()  # noqa: S324 - RFC 6455
    return base64.b64encode(digest).decode("ascii")


def switching_protocols(
    accept_key: str,
    subprotocol: str | None,
    headers: Sequence[tuple[bytes, bytes]],
) -> bytes:
    """The ``101 Switching Protocols`` response that opens the connection."""
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"upgrade: websocket",
        b"connection: Upgrade",
        b"sec-websocket-accept: " + accept_key.encode("ascii"),
    ]
    if subprotocol:
        lines.append(b"sec-websocket-protocol: " + subprotocol.encode("latin-1"))
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n"


def http_response(
    status: int,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    headers: Sequence[tuple[bytes, bytes]] = (),
) -> bytes:
    """A complete HTTP/1.1 response that ends the connection."""
    try:
        phrase = HTTPStatus(status).phrase.encode("ascii")
    except ValueError:
        phrase = b""
    lines = [
        b"HTTP/1.1 %d %s" % (status, phrase),
        b"content-type: " + content_type,
        b"content-length: %d" % len(body),
        b"connection: close",
    ]
    lines.extend(name + b": " + value for name, value in headers)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def encode_headers(headers: Sequence[tuple[str, str]]) -> list[tuple[bytes, bytes]]:
    """Encode handler-supplied headers, refusing CR, LF and NUL (response splitting)."""
    encoded = []
    for name, value in headers:
        if any(c in name + value for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}")
        encoded.append((name.lower().encode("latin-1"), value.encode("latin-1")))
    return encoded
