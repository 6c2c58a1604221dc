from __future__ import annotations

import asyncio
import re
import shutil
from html.parser import HTMLParser

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from palaver.config import Settings
from palaver.http.docs import STATIC_DIR, SWAGGER_UI_VERSION, docs_router
from palaver.http.middleware import CONTENT_SECURITY_POLICY, install_middleware
from palaver.metrics import Metrics
from tests.services import in_ci


class PageParser(HTMLParser):
    """Collects the URLs a page loads and the text inside its <script> elements."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self.inline_handlers: list[str] = []
        self.spec_urls: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        values = dict(attrs)
        for name in ("src", "href"):
            if values.get(name):
                self.urls.append(values[name] or "")
        if "data-spec-url" in values:
            self.spec_urls.append(values["data-spec-url"] or "")
        self.inline_handlers += [name for name in values if name.startswith("on")]
        if tag == "style" or "style" in values:
            self.inline_handlers.append("style")
        if tag == "script":
            self._in_script = True
            self.scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts[-1] += data


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    app = FastAPI(title="Palaver", docs_url=None, redoc_url=None)
    install_middleware(app, settings, Metrics())
    app.include_router(docs_router())

    @app.get("/api/users/{user_id}")
    async def get_user(user_id: int) -> dict[str, int]:
        return {"id": user_id}

    return app


def client_for(app: FastAPI, root_path: str = "") -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://palaver.test")


def parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.mark.parametrize(
    ("page", "spec"),
    [("/docs", "/openapi.json"), ("/api/chats/docs", "/api/chats/openapi.json")],
)
async def test_docs_page_is_self_contained(app: FastAPI, page: str, spec: str) -> None:
    async with client_for(app) as client:
        response = await client.get(page)
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/html")
        assert response.headers["content-security-policy"] == CONTENT_SECURITY_POLICY
        parsed = parse(response.text)
        assert "http:" not in response.text
        assert "https:" not in response.text
        assert "//" not in "".join(parsed.urls)
        assert parsed.spec_urls == [spec]
        assert len(parsed.scripts) == 2
        assert all(body.strip() == "" for body in parsed.scripts), "inline script"
        assert parsed.inline_handlers == []
        assert {url.split("?")[0] for url in parsed.urls} == {
            "/static/swagger/swagger-ui.css",
            "/static/swagger/favicon-32x32.png",
            "/static/swagger/swagger-ui-bundle.js",
            "/static/swagger/swagger-init.js",
        }
        for url in parsed.urls:
            asset = await client.get(url)
            assert asset.status_code == 200, url
            assert asset.headers["cache-control"] == "public, max-age=31536000, immutable"
            assert asset.headers["x-content-type-options"] == "nosniff"
        spec_response = await client.get(spec)
        assert spec_response.status_code == 200
        assert spec_response.json()["paths"].keys() >= {"/api/users/{user_id}"}


async def test_both_specs_are_the_same_document(app: FastAPI) -> None:
    async with client_for(app) as client:
        main = (await client.get("/openapi.json")).json()
        chats = (await client.get("/api/chats/openapi.json")).json()
    assert main == chats
    # The docs routes themselves stay out of the API description.
    assert not any("docs" in path or "static" in path for path in main["paths"])


async def test_init_script_reads_spec_url_from_the_page(app: FastAPI) -> None:
    async with client_for(app) as client:
        response = await client.get("/static/swagger/swagger-init.js")
    assert response.headers["content-type"].startswith("text/javascript")
    assert "dataset.specUrl" in response.text
    assert "validatorUrl: null" in response.text


async def test_assets_are_gzipped_for_clients_that_accept_it(app: FastAPI) -> None:
    async with client_for(app) as client:
        packed = await client.get(
            "/static/swagger/swagger-ui-bundle.js", headers={"Accept-Encoding": "gzip"}
        )
        plain = await client.get(
            "/static/swagger/swagger-ui-bundle.js", headers={"Accept-Encoding": "identity"}
        )
        icon = await client.get(
            "/static/swagger/favicon-32x32.png", headers={"Accept-Encoding": "gzip"}
        )
    original = (STATIC_DIR / "swagger-ui-bundle.js").read_bytes()
    assert packed.headers["content-encoding"] == "gzip"
    assert packed.headers["vary"] == "Accept-Encoding"
    assert packed.content == original  # httpx decodes
    assert int(packed.headers["content-length"]) < len(original) // 2
    assert "content-encoding" not in plain.headers
    assert plain.content == original
    assert "content-encoding" not in icon.headers
    assert icon.headers["content-type"] == "image/png"


@pytest.mark.parametrize(
    "path",
    [
        "/static/swagger/README.md",
        "/static/swagger/LICENSE",
        "/static/swagger/..%2F..%2Fdocs.py",
        "/static/swagger/swagger-ui-bundle.js.map",
    ],
)
async def test_only_listed_assets_are_served(app: FastAPI, path: str) -> None:
    async with client_for(app) as client:
        assert (await client.get(path)).status_code == 404


async def test_urls_follow_the_root_path(app: FastAPI) -> None:
    async with client_for(app, root_path="/chat") as client:
        response = await client.get("/chat/docs")
        parsed = parse(response.text)
        assert parsed.spec_urls == ["/chat/openapi.json"]
        assert all(url.startswith("/chat/static/swagger/") for url in parsed.urls)
        assert (await client.get(parsed.urls[0])).status_code == 200


async def test_asset_urls_change_with_content(app: FastAPI) -> None:
    async with client_for(app) as client:
        parsed = parse((await client.get("/docs")).text)
    versions = {re.sub(r".*\?v=", "", url) for url in parsed.urls}
    assert len(versions) == 4
    assert all(re.fullmatch(r"[0-9a-f]{16}", version) for version in versions)


def test_vendored_swagger_ui_matches_its_readme() -> None:
    readme = (STATIC_DIR / "README.md").read_text()
    assert f"swagger-ui-dist` {SWAGGER_UI_VERSION}" in readme
    assert "Apache-2.0" in readme
    bundle = (STATIC_DIR / "swagger-ui-bundle.js").read_bytes()
    assert len(bundle) > 1_000_000


@pytest.mark.browser
async def test_swagger_ui_runs_under_the_csp_in_a_browser(app: FastAPI) -> None:
    """Swagger UI renders and calls the API with no CSP violation and no other host."""
    chromium = shutil.which("chromium")
    if chromium is None:
        message = "chromium is not installed (make browser-deps)"
        if in_ci():
            pytest.fail(message)
        pytest.skip(message)
    from playwright.async_api import async_playwright, expect

    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="off")
    )
    task = asyncio.create_task(server.serve())
    problems: list[str] = []
    hosts: set[str] = set()
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        base = f"http://127.0.0.1:{server.servers[0].sockets[0].getsockname()[1]}"
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(executable_path=chromium)
            try:
                page = await browser.new_page()
                page.on("console", lambda msg: problems.append(msg.text))
                page.on("pageerror", lambda exc: problems.append(str(exc)))
                page.on("request", lambda request: hosts.add(request.url.split("/")[2]))
                await page.goto(base + "/api/chats/docs")
                await page.locator(".opblock-summary").filter(has_text="/api/users").click()
                await page.get_by_role("button", name="Try it out").click()
                await page.get_by_placeholder("user_id").fill("5")
                await page.get_by_role("button", name="Execute").click()
                status = page.locator(".live-responses-table tbody .response-col_status")
                await expect(status.first).to_have_text("200", use_inner_text=True, timeout=10_000)
            finally:
                await browser.close()
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
    assert problems == []
    assert hosts == {base.split("/")[2]}
