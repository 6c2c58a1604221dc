"""The README's screenshots: a lively room (a reply, reactions, an image, a thread) in
both themes and on a phone, taken from a real session so they show what users see."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests import media
from tests.browser.conftest import PHONE, save_screenshot
from tests.browser.people import Person

MakePerson = Callable[..., Person]


def _react(who: Person, text: str, emoji: str) -> None:
    row = who.message(text)
    row.hover()
    row.get_by_role("button", name="React", exact=True).click()
    row.get_by_role("button", name=f"React {emoji}").click()


def test_lively_room(person: MakePerson) -> None:
    alice = person("alice", display_name="Alice Moreau")
    bob = person("bob", display_name="Bob Lindqvist")
    carol = person("carol", display_name="Carol Diaz", viewport=PHONE)
    room = f"design-{alice.username[-4:]}"
    alice.create_room(room, topic="Mock-ups, reviews and launch plans")
    bob.join_room(room)
    carol.join_room(room)
    for who in (alice, carol):
        banner = who.page.locator("#notify-banner")
        if banner.is_visible():
            banner.get_by_role("button", name="Not now").click()
    bob.start_direct(alice)
    bob.send("Lunch at 1 after the review?")
    bob.open(room)

    bob.send("Morning! The onboarding mock-ups are ready for review ☕")
    page = bob.page
    page.locator(".attach-input").set_input_files(
        [
            {
                "name": "onboarding.png",
                "mimeType": "image/png",
                "buffer": media.image("PNG", (640, 400)),
            }
        ]
    )
    expect(page.locator('#attach-tray .attach-chip[data-state="ready"]')).to_have_count(1)
    page.locator("#composer-input").fill("Screen 2, with the lighter header")
    page.locator("#composer-input").press("Enter")
    expect(alice.message("Screen 2, with the lighter header")).to_be_visible()

    _react(alice, "Screen 2, with the lighter header", "❤️")
    _react(carol, "Screen 2, with the lighter header", "👍")
    _react(carol, "Morning! The onboarding mock-ups are ready for review ☕", "🙏")

    first = carol.message("Morning! The onboarding mock-ups are ready for review ☕")
    first.hover()
    first.get_by_role("button", name="Reply in thread").click()
    thread = carol.page.get_by_role("textbox", name="Reply in thread")
    thread.fill("Could we try the darker palette too?")
    thread.press("Enter")
    carol.page.get_by_role("button", name="Close thread").click()
    expect(alice.page.locator("#rows .thread-count")).to_contain_text("1 reply")

    shot = alice.message("Screen 2, with the lighter header")
    shot.hover()
    shot.get_by_role("button", name="Reply", exact=True).click()
    alice.send("Much calmer than v1 — let's ship this one 🚀")
    bob.send("Great, I'll hand them to the team at 3")
    alice.send("Thanks Bob! 🙌")
    expect(carol.message("Thanks Bob! 🙌")).to_be_visible()
    alice.open(bob.display_name)

    alice.send("Yes! See you at 1")
    alice.open(room)
    alice.page.mouse.move(1, 1)
    save_screenshot(alice.page, "desktop-dark.png")
    alice.page.get_by_role("button", name="Switch to light theme").click()
    expect(alice.page.locator("html")).to_have_attribute("data-theme", "light")
    alice.page.mouse.move(1, 1)
    save_screenshot(alice.page, "desktop-light.png")
    carol.page.mouse.move(1, 1)
    save_screenshot(carol.page, "phone.png")
