"""The web client: ``GET /`` serves the page, ``GET /app/{path}`` its static assets.

The client is plain ES modules under ``palaver/web/`` with no build step. Caching:

* ``/`` is ``no-cache`` (always revalidated, with an ``ETag``), so a deploy is seen on
  the next load.
* The page refers to its assets under a versioned prefix, ``/app/v-<digest>/...``,
  where the digest covers every file of the client. Modules import each other by
  relative paths, so the whole module graph inherits the prefix without a build step,
  and those URLs are cached for a year as ``immutable``.
* ``/app/<path>`` without a version (or with another deploy's version, from a page
  loaded before the deploy) is served with ``public, max-age=3600``.

Only the files found under ``palaver/web/`` when the router is built are served, from
a table looked up by exact relative path, so no request can reach outside it::

    app.include_router(web_router())
"""

from __future__ import annotations

import gzip
import hashlib
import html
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import Response

from palaver.core.errors import not_found

__all__ = ["WEB_DIR", "web_router"]

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
INDEX = "index.html"
ASSET_PREFIX = "/app"
CACHE_VERSIONED = "public, max-age=31536000, immutable"
CACHE_UNVERSIONED = "public, max-age=3600"
CACHE_PAGE = "no-cache"
# Compressing a few kilobytes of text costs more than it saves.
GZIP_MIN_BYTES = 1024

MEDIA_TYPES: dict[str, str] = {
    ".js": "text/javascript; charset=utf-8",
    ".mjs": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".html": "text/html; charset=utf-8",
    ".json": "application/json",
    ".webmanifest": "application/manifest+json",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/x-icon",
    ".woff2": "font/woff2",
    ".txt": "text/plain; charset=utf-8",
}
_COMPRESSIBLE = frozenset({".js", ".mjs", ".css", ".html", ".json", ".webmanifest", ".svg"})


class _Asset:
    """One file's bytes, kept in memory with its gzip form and ETag."""

    __slots__ = ("body", "etag", "gzipped", "media_type")

    def __init__(self, body: bytes, media_type: str, compressible: bool) -> None:
        self.body = body
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self.gzipped = (
            gzip.compress(body, mtime=0) if compressible and len(body) >= GZIP_MIN_BYTES else None
        )


def _load(root: Path) -> tuple[dict[str, _Asset], str, str]:
    """Every servable file under ``root`` by relative path, the client's digest, and
    the page template."""
    assets: dict[str, _Asset] = {}
    digest = hashlib.sha256()
    template = ""
    if root.is_dir():
        for path in sorted(root.rglob("*")):
            if not path.is_file() or any(part.startswith(".") for part in path.parts):
                continue
            relative = path.relative_to(root).as_posix()
            body = path.read_bytes()
            digest.update(relative.encode() + b"\0" + body + b"\0")
            if relative == INDEX:
                template = body.decode("utf-8")
                continue
            media_type = MEDIA_TYPES.get(path.suffix.lower())
            if media_type is None:
                continue  # editor backups, notes: never served
            assets[relative] = _Asset(body, media_type, path.suffix.lower() in _COMPRESSIBLE)
    return assets, digest.hexdigest()[:16], template


def _accepts_gzip(request: Request) -> bool:
    return any(
        part.split(";")[0].strip() == "gzip"
        for part in request.headers.get("accept-encoding", "").lower().split(",")
    )


def _not_modified(request: Request, etag: str) -> bool:
    given = request.headers.get("if-none-match", "")
    return any(tag.strip().removeprefix("W/") == etag for tag in given.split(","))


def _respond(request: Request, asset: _Asset, cache_control: str) -> Response:
    headers = {"Cache-Control": cache_control, "ETag": asset.etag}
    if asset.gzipped is not None:
        headers["Vary"] = "Accept-Encoding"
    if _not_modified(request, asset.etag):
        return Response(status_code=304, headers=headers)
    body = asset.body
    if asset.gzipped is not None and _accepts_gzip(request):
        headers["Content-Encoding"] = "gzip"
        body = asset.gzipped
    if request.method == "HEAD":
        headers["Content-Length"] = str(len(body))
        return Response(media_type=asset.media_type, headers=headers)
    return Response(body, media_type=asset.media_type, headers=headers)


def web_router(root: Path = WEB_DIR) -> APIRouter:
    """Serve the web client found under ``root`` (read once, when this is called).

    The page template's ``{{root}}`` becomes the ASGI ``root_path`` (so the client
    works behind a proxy under a sub-path) and ``{{assets}}`` the versioned asset
    prefix. Editing the client's files needs a restart to be seen.
    """
    assets, digest, template = _load(root)
    version = f"v-{digest}"
    router = APIRouter(include_in_schema=False)
    pages: dict[str, _Asset] = {}

    def page(root_path: str) -> _Asset:
        cached = pages.get(root_path)
        if cached is None:
            base = html.escape(root_path.rstrip("/"), quote=True)
            body = template.replace("{{root}}", base).replace(
                "{{assets}}", f"{base}{ASSET_PREFIX}/{version}"
            )
            cached = _Asset(body.encode(), MEDIA_TYPES[".html"], compressible=True)
            # One entry per distinct root_path, of which a deployment has one or two.
            if len(pages) < 16:
                pages[root_path] = cached
        return cached

    @router.api_route("/", methods=["GET", "HEAD"])
    async def index(request: Request) -> Response:
        if not template:
            raise not_found("web client")
        return _respond(request, page(request.scope.get("root_path", "")), CACHE_PAGE)

    @router.api_route(ASSET_PREFIX + "/{path:path}", methods=["GET", "HEAD"])
    async def asset(path: str, request: Request) -> Response:
        cache_control = CACHE_UNVERSIONED
        first, _, rest = path.partition("/")
        if first.startswith("v-") and rest:
            path = rest
            if first == version:
                cache_control = CACHE_VERSIONED
        found = assets.get(path)
        if found is None:
            raise not_found("file")
        return _respond(request, found, cache_control)

    return router
