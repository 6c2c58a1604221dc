"""Message search in the web client: matches highlighted as text, a click opens the
conversation."""

from __future__ import annotations

import time
from collections.abc import Callable

from playwright.sync_api import Locator, Page, expect

from tests.browser.conftest import PalaverServer
from tests.browser.people import Person
from tests.browser.rest import Rest

MakePerson = Callable[..., Person]
# Room for a long history written over REST in a moment.
SERVER_ENV = {"PALAVER_RATE_MESSAGES_BURST": "500"}


def search_until_found(page: Page, query: str) -> Locator:
    """Type ``query`` in the search box until it finds something (the index follows a
    send within about a second; searches are limited to a few a second), or give up
    after 15 s; the result list."""
    box = page.locator("#search")
    results = page.locator("#message-results-list li")
    deadline = time.monotonic() + 15
    while True:
        box.fill("")
        box.fill(query)
        expect(page.locator("#message-results")).to_be_visible()
        expect(page.locator("#message-results")).not_to_have_attribute("aria-busy", "true")
        if results.count() or time.monotonic() > deadline:
            return results
        page.wait_for_timeout(300)


def test_search_highlights_matches_and_opens_the_conversation(person: MakePerson) -> None:
    alice = person("alice")
    room = f"trips-{alice.username[-6:]}"
    other = f"misc-{alice.username[-6:]}"
    alice.create_room(room)
    alice.send("Train tickets for <b>Zürich</b> are in zurich_trip.pdf")
    alice.create_room(other)
    alice.send("nothing to see here")
    expect(alice.page.locator("#conv-title")).to_have_text(other)

    page = alice.page
    box = page.locator("#search")
    results = search_until_found(page, "ZURICH")
    expect(results).to_have_count(1)
    marks = results.first.locator("mark")
    expect(marks).to_have_text(["Zürich", "zurich"])
    # The angle brackets stayed text: no element came out of the message.
    expect(results.first.locator("b")).to_have_count(0)
    expect(results.first.locator(".search-result-text")).to_contain_text("<b>Zürich</b>")
    expect(results.first.locator(".search-result-meta")).to_contain_text(room)

    results.first.locator("button").click()
    expect(page.locator("#conv-title")).to_have_text(room)
    expect(page.locator("#message-results")).to_be_hidden()

    # Too short to search: the section stays hidden.
    box.fill("zu")
    expect(page.locator("#message-results")).to_be_hidden()


def test_a_search_result_shows_its_message_however_far_back(
    person: MakePerson, server: PalaverServer
) -> None:
    alice = person("alice")
    room = f"notes-{alice.username[-6:]}"
    alice.create_room(room)
    alice.send("the wifi password is hunter2")
    rest = Rest(server.url, alice)
    room_id = rest.conversation_id(room)
    later = [f"later {n:03d}" for n in range(120)]  # more than two pages of history
    for text in later:
        rest.call("POST", f"/api/conversations/{room_id}/messages", {"content": text})
    alice.page.reload()
    alice.expect_online()
    alice.page.keyboard.press("Escape")
    expect(alice.page.locator("#conversation")).to_be_hidden()

    page = alice.page
    results = search_until_found(page, "hunter2")
    results.first.locator("button").click()
    expect(page.locator("#conv-title")).to_have_text(room)
    # The conversation opens on the message found, not on its newest page.
    found = alice.message("the wifi password is hunter2")
    expect(found).to_be_in_viewport()
    expect(alice.message(later[-1])).not_to_be_in_viewport()
