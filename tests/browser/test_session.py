"""The session outlives its short-lived access tokens without the user noticing."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import WebSocket, expect

from tests.browser.people import Person

MakePerson = Callable[..., Person]
# The shortest lifetime the server accepts; the client refreshes at 70% of it (21 s).
TOKEN_TTL = 30
SERVER_ENV = {"PALAVER_ACCESS_TOKEN_TTL": str(TOKEN_TTL)}
# The server checks token expiry once a second.
EXPIRY_SLACK = 3


@pytest.mark.slow
def test_access_token_is_refreshed_silently(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    sockets: list[WebSocket] = []
    bob.page.on("websocket", lambda ws: sockets.append(ws))

    # A reload gets a new access token from the refresh cookie; its socket is watched.
    bob.page.reload()
    bob.expect_online()
    issued = time.monotonic()
    assert len(sockets) == 1
    socket = sockets[0]
    alice.start_direct(bob)
    alice.send("before the token expires")
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")

    # Before expiry the client refreshes over REST and re-authenticates the open
    # socket in band (`auth` -> `auth_ok`), instead of being closed with 4001.
    socket.wait_for_event(
        "framereceived",
        predicate=lambda payload: '"auth_ok"' in str(payload),
        timeout=(TOKEN_TTL + EXPIRY_SLACK) * 1000,
    )
    # The socket outlives the token it was opened with.
    remaining = issued + TOKEN_TTL + EXPIRY_SLACK - time.monotonic()
    if remaining > 0:
        with pytest.raises(PlaywrightTimeout):
            socket.wait_for_event("close", timeout=remaining * 1000)
    assert not socket.is_closed()
    assert len(sockets) == 1
    expect(bob.page.locator("#conn")).to_have_attribute("data-state", "online")

    # REST calls use the new token too, and the socket still carries messages.
    bob.open(alice.display_name)
    expect(bob.message("before the token expires")).to_be_visible()
    bob.send("still here")
    expect(alice.message("still here")).to_be_visible()
    expect(alice.message("before the token expires")).to_have_attribute("data-status", "read")


def test_too_many_failed_logins_say_when_to_try_again(person: MakePerson) -> None:
    alice = person("alice")
    page = alice.page.context.browser.new_page(base_url=alice.page.url)  # type: ignore[union-attr]
    try:
        page.goto("/")
        form = page.locator("#login-form")
        form.locator('input[name="login"]').fill(alice.username)
        form.locator('input[name="password"]').fill("Wrong-Horse-9")
        error = form.locator(".form-error")
        for _ in range(5):
            form.get_by_role("button", name="Sign in").click()
            expect(error).to_have_text("Invalid login or password.")
            error.evaluate("el => { el.textContent = ''; }")
        form.get_by_role("button", name="Sign in").click()
        # The server says how long (Retry-After): so does the form, once.
        expect(error).to_have_text(re.compile(r"^Too many failed logins\. Try again in \d+ s\.$"))
    finally:
        page.close()
