"""Swagger UI served by Palaver itself: no CDN, no inline script.

FastAPI's built-in ``/docs`` loads Swagger UI from a CDN and starts it with an inline
script, both of which the Content-Security-Policy forbids. This router serves the
``swagger-ui-dist`` files shipped in ``static/swagger/`` and a page that starts them
from ``swagger-init.js``::

    app = FastAPI(docs_url=None, redoc_url=None)  # keeps openapi_url="/openapi.json"
    app.include_router(docs_router())
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import html
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, JSONResponse, Response

__all__ = ["DEFAULT_PAGES", "STATIC_DIR", "STATIC_PREFIX", "SWAGGER_UI_VERSION", "docs_router"]

SWAGGER_UI_VERSION = "5.35.0"
STATIC_DIR = Path(__file__).parent / "static" / "swagger"
STATIC_PREFIX = "/static/swagger"
# (page, spec): /api/chats/docs is where clients of the chat seed look for the docs.
DEFAULT_PAGES: tuple[tuple[str, str], ...] = (
    ("/docs", "/openapi.json"),
    ("/api/chats/docs", "/api/chats/openapi.json"),
)

# Only these names are served: a fixed table needs no path-traversal checks.
_ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "swagger-init.js": "text/javascript; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# URLs carry a content hash, so a year (the HTTP maximum) and "immutable" are safe.
_CACHE_FOREVER = "public, max-age=31536000, immutable"

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="stylesheet" href="{css}">
<link rel="icon" type="image/png" href="{icon}">
</head>
<body>
<div id="swagger-ui" data-spec-url="{spec}"></div>
<script src="{bundle}"></script>
<script src="{init}"></script>
</body>
</html>
"""


class _Asset:
    def __init__(self, name: str) -> None:
        self.body = (STATIC_DIR / name).read_bytes()
        self.media_type = _ASSETS[name]
        self.digest = hashlib.sha256(self.body).hexdigest()[:16]
        # The 1.7 MB bundle shrinks to about 500 KB; compress once, not per request.
        self.gzipped = gzip.compress(self.body, mtime=0) if name.endswith((".js", ".css")) else None


@functools.cache
def _asset(name: str) -> _Asset:
    return _Asset(name)


def _accepts_gzip(request: Request) -> bool:
    return any(
        part.split(";")[0].strip() == "gzip"
        for part in request.headers.get("accept-encoding", "").lower().split(",")
    )


def docs_router(
    pages: Sequence[tuple[str, str]] = DEFAULT_PAGES,
    *,
    title: str = "Palaver API",
    app_openapi_url: str | None = "/openapi.json",
) -> APIRouter:
    """Serve a Swagger UI page for each ``(page_url, spec_url)`` and its static assets.

    Every spec URL other than ``app_openapi_url`` (which FastAPI already serves) gets a
    route returning the application's own OpenAPI document. Paths are relative to the
    ASGI ``root_path``, so the docs also work behind a proxy under a sub-path.
    """
    router = APIRouter(include_in_schema=False)

    def url(request: Request, path: str) -> str:
        return html.escape(request.scope.get("root_path", "").rstrip("/") + path, quote=True)

    def asset_url(request: Request, name: str) -> str:
        return url(request, f"{STATIC_PREFIX}/{name}?v={_asset(name).digest}")

    def make_page(spec_url: str) -> Callable[[Request], Awaitable[HTMLResponse]]:
        async def swagger_page(request: Request) -> HTMLResponse:
            body = _PAGE.format(
                title=html.escape(title),
                css=asset_url(request, "swagger-ui.css"),
                icon=asset_url(request, "favicon-32x32.png"),
                bundle=asset_url(request, "swagger-ui-bundle.js"),
                init=asset_url(request, "swagger-init.js"),
                spec=url(request, spec_url),
            )
            return HTMLResponse(body, headers={"Cache-Control": "no-cache"})

        return swagger_page

    async def openapi(request: Request) -> JSONResponse:
        return JSONResponse(request.app.openapi())

    for page_url, spec_url in pages:
        router.add_api_route(page_url, make_page(spec_url), methods=["GET"])
        if spec_url != app_openapi_url:
            router.add_api_route(spec_url, openapi, methods=["GET"])

    @router.get(STATIC_PREFIX + "/{name}")
    async def static_asset(name: str, request: Request) -> Response:
        if name not in _ASSETS:
            raise HTTPException(status_code=404)
        asset = _asset(name)
        headers = {"Cache-Control": _CACHE_FOREVER}
        if asset.gzipped is None:
            return Response(asset.body, media_type=asset.media_type, headers=headers)
        headers["Vary"] = "Accept-Encoding"
        if _accepts_gzip(request):
            headers["Content-Encoding"] = "gzip"
            return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
        return Response(asset.body, media_type=asset.media_type, headers=headers)

    return router
