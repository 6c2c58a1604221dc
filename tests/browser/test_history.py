"""Long conversations: infinite scroll back through history, jump to the newest,
desktop notifications and mute."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests.browser.people import Person

MakePerson = Callable[..., Person]
HISTORY = 110  # more than two pages of 50
SETTLED = re.compile(r"^(sent|delivered|read)$")

# Stands in for the Notification API and lets a test hide the page: headless Chromium
# has no notification centre and its pages are always visible.
FAKE_NOTIFICATIONS = """
(() => {
  window.notes = [];
  window.pageHidden = false;
  class FakeNotification {
    static permission = "default";
    static requestPermission() {
      FakeNotification.permission = "granted";
      return Promise.resolve("granted");
    }
    constructor(title, options = {}) {
      window.notes.push({ title, body: options.body, tag: options.tag });
    }
    close() {}
  }
  window.Notification = FakeNotification;
  Object.defineProperty(Document.prototype, "visibilityState", {
    configurable: true,
    get() { return window.pageHidden ? "hidden" : "visible"; },
  });
  Object.defineProperty(Document.prototype, "hidden", {
    configurable: true,
    get() { return window.pageHidden; },
  });
})();
"""


def _scroll_to_top(page: Page) -> None:
    page.locator("#messages").evaluate("box => { box.scrollTop = 0; }")


def test_infinite_scroll_and_jump_to_newest(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.start_direct(bob)
    bob.page.goto("about:blank")  # Bob is away while the history piles up

    texts = [f"message {n:03d}" for n in range(1, HISTORY + 1)]
    for text in texts:
        alice.send(text)
    # The client sends its outbox in order and waits out the server's rate limit.
    expect(alice.message(texts[-1])).to_have_attribute("data-status", SETTLED, timeout=30_000)
    alice.expect_texts(texts)

    bob.page.goto("/")
    bob.expect_online()
    expect(bob.unread_badge(alice.display_name)).to_have_text(str(HISTORY))
    # All unread: the conversation opens at the first unread message, paging back to it.
    bob.open(alice.display_name)
    expect(bob.messages()).to_have_count(HISTORY)
    marker = bob.page.locator("#rows .row.unread-marker")
    expect(marker).to_be_in_viewport()
    expect(bob.message(texts[0])).to_be_in_viewport()
    # Nothing is read until Bob gets to the bottom.
    expect(alice.message(texts[-1])).to_have_attribute("data-status", "delivered")
    bob.page.get_by_role("button", name="Jump to the newest message").click()
    expect(alice.message(texts[-1])).to_have_attribute("data-status", "read")
    expect(bob.unread_badge(alice.display_name)).to_have_count(0)

    # Everything read: a fresh load opens at the bottom with the newest page only...
    bob.page.reload()
    bob.expect_online()
    expect(bob.page.locator("#conv-title")).to_have_text(alice.display_name)
    expect(bob.messages()).to_have_count(50)
    expect(bob.message(texts[-1])).to_be_in_viewport()
    expect(marker).to_have_count(0)
    # ... and scrolling up fetches older pages, keeping the reader's place.
    _scroll_to_top(bob.page)
    expect(bob.messages()).to_have_count(100)
    assert bob.page.locator("#messages").evaluate("box => box.scrollTop") > 0
    _scroll_to_top(bob.page)
    expect(bob.messages()).to_have_count(HISTORY)
    expect(bob.page.locator("#history-status")).to_have_text(
        "This is the beginning of the conversation."
    )
    bob.expect_texts(texts)
    assert bob.seqs() == list(range(1, HISTORY + 1))

    # Far from the bottom, a new message does not pull the view down: the jump
    # button appears and counts it.
    jump = bob.page.get_by_role("button", name="Jump to the newest message")
    expect(jump).to_be_visible()
    alice.send("a new one")
    expect(bob.message("a new one")).to_have_count(1)
    expect(bob.page.locator("#jump-count")).to_have_text("1")
    expect(bob.message("a new one")).not_to_be_in_viewport()
    jump.click()
    expect(jump).to_be_hidden()
    expect(bob.message("a new one")).to_be_in_viewport()
    expect(alice.message("a new one")).to_have_attribute("data-status", "read")
    expect(bob.unread_badge(alice.display_name)).to_have_count(0)


def test_notifications_mute_and_mentions(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    bob.page.context.add_init_script(FAKE_NOTIFICATIONS)
    bob.page.reload()
    bob.expect_online()
    page = bob.page

    # Permission is asked only when Bob presses the button, never on load.
    banner = page.get_by_role("region", name="Desktop notifications")
    expect(banner).to_be_visible()
    assert page.evaluate("() => Notification.permission") == "default"
    banner.get_by_role("button", name="Turn on").click()
    expect(banner).to_be_hidden()
    assert page.evaluate("() => Notification.permission") == "granted"

    def hide(hidden: bool) -> None:
        page.evaluate(
            "hidden => { window.pageHidden = hidden;"
            " document.dispatchEvent(new Event('visibilitychange')); }",
            hidden,
        )

    def notes() -> list[dict[str, str]]:
        result: list[dict[str, str]] = page.evaluate("() => window.notes")
        return result

    alice.start_direct(bob)
    alice.send("first")
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")
    assert notes() == []  # visible tab: the list is enough

    hide(True)
    alice.send("while you were away")
    page.wait_for_function("() => window.notes.length === 1")
    assert notes()[0]["title"] == alice.display_name
    assert notes()[0]["body"] == "while you were away"
    expect(page).to_have_title("(2) Palaver")

    # A hidden tab does not mark anything read, even with the conversation open.
    bob.open(alice.display_name)
    page.get_by_role("button", name="Mute notifications").click()
    expect(page.get_by_role("button", name="Unmute notifications")).to_have_attribute(
        "aria-pressed", "true"
    )
    alice.send("muted chatter")
    expect(bob.message("muted chatter")).to_be_visible()
    expect(bob.unread_badge(alice.display_name)).to_have_text("3")
    # Muted: no notification, and its unread messages leave the tab title.
    assert len(notes()) == 1
    expect(page).to_have_title("Palaver")

    # A mention gets through the mute.
    alice.send(f"@{bob.username} are you there?")
    page.wait_for_function("() => window.notes.length === 2")
    assert notes()[1]["body"] == f"@{bob.username} are you there?"

    # Coming back reads everything.
    hide(False)
    expect(bob.unread_badge(alice.display_name)).to_have_count(0)
    expect(alice.message(f"@{bob.username} are you there?")).to_have_attribute(
        "data-status", "read"
    )
    expect(page).to_have_title("Palaver")
    # The mute is remembered.
    page.reload()
    bob.expect_online()
    expect(page.get_by_role("button", name="Unmute notifications")).to_be_visible()
