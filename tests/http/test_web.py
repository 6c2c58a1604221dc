"""The web client's router: page, assets, caching, content types, path safety, CSP."""

from __future__ import annotations

import gzip
import re
from collections.abc import AsyncIterator
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from palaver.http.errors import install_error_handlers
from palaver.http.web import CACHE_UNVERSIONED, CACHE_VERSIONED, WEB_DIR, web_router


class Page(HTMLParser):
    """The URLs a page loads, its inline scripts and its inline styles."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.inline: list[str] = []
        self.modules: list[str] = []
        self._script_has_src = True

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name) and not str(values[name]).startswith("#"):
                self.urls.append(str(values[name]))
        self.inline += [f"{tag} {name}" for name in values if name.startswith("on")]
        if tag == "style" or "style" in values:
            self.inline.append(f"{tag} style")
        if tag == "script":
            self._script_has_src = "src" in values
            if values.get("type") == "module":
                self.modules.append(str(values["src"]))

    def handle_data(self, data: str) -> None:
        if not self._script_has_src and data.strip():
            self.inline.append("inline script")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._script_has_src = True


def _app(root: Path = WEB_DIR) -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(web_router(root))
    return app


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    app = _app()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
        yield client


async def _page(http: httpx.AsyncClient) -> Page:
    response = await http.get("/")
    assert response.status_code == 200
    page = Page()
    page.feed(response.text)
    return page


async def test_index_is_revalidated_and_strict_csp_friendly(http: httpx.AsyncClient) -> None:
    response = await http.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert response.headers["cache-control"] == "no-cache"
    assert "{{" not in response.text
    page = await _page(http)
    # script-src 'self' and style-src 'self': nothing inline.
    assert page.inline == []
    assert page.modules
    assert all(url.startswith("/app/v-") for url in page.modules)
    again = await http.get("/", headers={"If-None-Match": response.headers["etag"]})
    assert again.status_code == 304
    assert again.content == b""


async def test_every_asset_the_page_loads_is_served(http: httpx.AsyncClient) -> None:
    page = await _page(http)
    assert page.urls
    for url in page.urls:
        response = await http.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == CACHE_VERSIONED
    js = await http.get(page.modules[0])
    assert js.headers["content-type"] == "text/javascript; charset=utf-8"


async def test_module_imports_resolve(http: httpx.AsyncClient) -> None:
    """Every relative import of every module names a file that exists."""
    page = await _page(http)
    base = page.modules[0].rsplit("/js/", 1)[0]
    for path in sorted((WEB_DIR / "js").rglob("*.js")):
        source = path.read_text()
        for target in re.findall(r'^\s*(?:import|export)[^;]*?from\s+"(\.[^"]+)"', source, re.M):
            resolved = (path.parent / target).resolve()
            assert resolved.is_file(), f"{path.name} imports missing {target}"
            url = f"{base}/{resolved.relative_to(WEB_DIR).as_posix()}"
            assert (await http.get(url)).status_code == 200, url


async def test_unversioned_assets_cache_for_an_hour(http: httpx.AsyncClient) -> None:
    for url in ("/app/js/main.js", "/app/v-0000000000000000/js/main.js"):
        response = await http.get(url)
        assert response.status_code == 200, url
        assert response.headers["cache-control"] == CACHE_UNVERSIONED
    css = await http.get("/app/css/app.css")
    assert css.headers["content-type"] == "text/css; charset=utf-8"
    svg = await http.get("/app/img/icon.svg")
    assert svg.headers["content-type"] == "image/svg+xml"


async def test_assets_are_gzipped_when_accepted(http: httpx.AsyncClient) -> None:
    plain = await http.get("/app/js/chat.js", headers={"Accept-Encoding": "identity"})
    assert "content-encoding" not in plain.headers
    raw = await http.get("/app/js/chat.js", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    assert raw.headers["vary"] == "Accept-Encoding"
    # httpx decodes it: the bytes are the same file.
    assert raw.content == plain.content
    assert gzip.compress(plain.content)  # sanity: there is something to compress


@pytest.mark.parametrize(
    "path",
    [
        "/app/../http/web.py",
        "/app/..%2Fhttp%2Fweb.py",
        "/app/js/../../http/web.py",
        "/app/%2e%2e/%2e%2e/config.py",
        "/app/index.html",
        "/app/",
        "/app/js/",
        "/app/js/missing.js",
        "/app/v-0000000000000000/../../web.py",
        "/app//etc/passwd",
    ],
)
async def test_paths_outside_the_client_are_refused(http: httpx.AsyncClient, path: str) -> None:
    response = await http.get(path)
    assert response.status_code == 404, path
    assert b"import" not in response.content


async def test_head_requests(http: httpx.AsyncClient) -> None:
    response = await http.head("/app/js/main.js", headers={"Accept-Encoding": "identity"})
    assert response.status_code == 200
    assert int(response.headers["content-length"]) == len((WEB_DIR / "js/main.js").read_bytes())


async def test_root_path_prefixes_every_url() -> None:
    app = _app()
    transport = httpx.ASGITransport(app=app, root_path="/chat")
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        response = await http.get("/chat/")
    assert response.status_code == 200
    page = Page()
    page.feed(response.text)
    assert all(url.startswith("/chat/app/") for url in page.urls)
    assert '<meta name="palaver-root" content="/chat">' in response.text


async def test_missing_client_is_a_404(tmp_path: Path) -> None:
    app = _app(tmp_path)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
        assert (await http.get("/")).status_code == 404
