"""Real-browser tests: Debian's Chromium driven by Playwright against a real server.

Each test module starts its own ``palaver serve`` in a subprocess (a fresh SQLite data
directory, a free port) and stops it with SIGTERM at the end. Tests use Playwright's
sync API, so they are plain ``def`` functions (the suite runs in asyncio mode, where
only those run outside an event loop).

When Chromium cannot start the tests fail under CI (``CI=true``) and are skipped,
loudly, elsewhere. A failing test leaves a screenshot of each of its pages in
``test-artifacts/``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.browser.people import Person
from tests.deployment import free_port

CHROMIUM = os.environ.get("PALAVER_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flags Chromium keeps trying to reach Google's
# services, which on a closed network stalls start-up and spams the logs.
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
SCREENSHOTS = ARTIFACTS / "screenshots"
SERVER_START_TIMEOUT = 30.0
SERVER_STOP_TIMEOUT = 20.0
# Generous: a loaded CI machine runs the server, two browsers and the tests at once.
EXPECT_TIMEOUT_MS = 10_000
expect.set_options(timeout=EXPECT_TIMEOUT_MS)
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.browser)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
    # Keep each phase's report on the item, so fixtures can tell whether the test failed.
    report = yield
    setattr(item, f"report_{report.when}", report)
    return report


# -- the server --------------------------------------------------------------------------


class PalaverServer:
    """``palaver serve`` in a subprocess, restartable on the same port and data."""

    def __init__(self, data_dir: Path, env: dict[str, str] | None = None) -> None:
        self.data_dir = data_dir
        self.env = env or {}
        self.port = free_port()
        self.process: subprocess.Popen[bytes] | None = None
        self._healthy = False
        self.log_path = data_dir / "server.log"
        self._log: Any = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, *, wait: bool = True) -> None:
        """Start the server; with ``wait=False`` return at once (call
        :meth:`wait_healthy` before using it), so the browser can start meanwhile."""
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self._healthy = False
        self._log = self.log_path.open("ab")
        # cwd is the data directory, so a palaver.yaml lying in the checkout is not read.
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "palaver.cli",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
            ],
            cwd=self.data_dir,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PALAVER_LOG_FORMAT": "console", **self.env},
        )
        if wait:
            self.wait_healthy()

    def wait_healthy(self) -> None:
        if self._healthy or self.process is None:
            return
        deadline = time.monotonic() + SERVER_START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                self._close_log()
                raise RuntimeError(f"palaver serve exited early:\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(f"{self.url}/health", timeout=2) as response:
                    if response.status == 200:
                        self._healthy = True
                        return
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"palaver serve did not become healthy:\n{self.log_tail()}")

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(SERVER_STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self._close_log()

    def restart(self) -> None:
        self.stop()
        self.start()

    def _close_log(self) -> None:
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[PalaverServer]:
    """One server per test module; a module's ``SERVER_ENV`` adds settings."""
    env = getattr(request.module, "SERVER_ENV", None)
    instance = PalaverServer(tmp_path_factory.mktemp("palaver-browser"), env)
    instance.start(wait=False)  # new_page waits for it, after starting the browser
    try:
        yield instance
    finally:
        instance.stop()


# -- the browser -------------------------------------------------------------------------


# Module scope, not session: while the sync API is started its event loop counts as
# the thread's running loop, and pytest-asyncio cannot run the async tests of other
# modules until it is stopped again.
@pytest.fixture(scope="module")
def playwright_instance() -> Iterator[Playwright]:
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance: Playwright) -> Iterator[Browser]:
    problem = None
    if not Path(CHROMIUM).exists():
        problem = f"Chromium is not installed at {CHROMIUM} (run `make browser-deps`)"
    else:
        try:
            instance = playwright_instance.chromium.launch(
                executable_path=CHROMIUM, args=CHROMIUM_ARGS, timeout=60_000
            )
        except Exception as exc:
            problem = f"Chromium at {CHROMIUM} did not start: {exc}"
    if problem is not None:
        if _in_ci():
            pytest.fail(f"browser tests cannot run under CI: {problem}")
        message = f"SKIPPING BROWSER TESTS: {problem}"
        sys.stderr.write(f"\n*** {message} ***\n")
        pytest.skip(message)
    try:
        yield instance
    finally:
        instance.close()


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")[:120]


@pytest.fixture
def new_page(
    server: PalaverServer, browser: Browser, request: pytest.FixtureRequest
) -> Iterator[Callable[..., Page]]:
    """Open a page of the web client in a fresh browser context (its own cookies and
    storage: another person, or the same person on another device); ``touch=True``
    makes it a touch screen without a hovering pointer, as a phone's."""
    contexts: list[BrowserContext] = []
    errors: list[str] = []
    # The server (asked first) booted while the browser started.
    server.wait_healthy()

    def make(viewport: dict[str, int] | None = None, *, touch: bool = False) -> Page:
        context = browser.new_context(
            viewport=viewport or DESKTOP, base_url=server.url, has_touch=touch, is_mobile=touch
        )
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto("/")
        return page

    yield make

    report = getattr(request.node, "report_call", None)
    if report is not None and report.failed:
        ARTIFACTS.mkdir(exist_ok=True)
        for index, context in enumerate(contexts):
            for number, page in enumerate(context.pages):
                path = ARTIFACTS / f"{_slug(request.node.name)}-{index}-{number}.png"
                try:
                    page.screenshot(path=str(path), full_page=True)
                except Exception as exc:  # the page may be gone; the report matters more
                    sys.stderr.write(f"screenshot {path} failed: {exc}\n")
        (ARTIFACTS / f"{_slug(request.node.name)}-server.log").write_text(server.log_tail(200))
    for context in contexts:
        context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


@pytest.fixture
def person(new_page: Callable[..., Page]) -> Callable[..., Person]:
    """Register a new user in a new browser context and return them signed in."""

    def make(
        name: str,
        *,
        display_name: str | None = None,
        viewport: dict[str, int] | None = None,
        touch: bool = False,
    ) -> Person:
        username = f"{name}{uuid.uuid4().hex[:6]}"
        who = Person(
            page=new_page(viewport, touch=touch),
            username=username,
            display_name=display_name or f"{name.capitalize()} {username[-6:]}",
        )
        who.register()
        return who

    return make


def save_screenshot(page: Page, name: str) -> Path:
    """Keep a screenshot of a passing test (for release notes) under test-artifacts/."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / name
    page.screenshot(path=str(path))
    return path
