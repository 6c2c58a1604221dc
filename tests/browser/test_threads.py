"""Replies and threads in a real browser, between two people."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import expect

from tests.browser.conftest import PalaverServer
from tests.browser.people import Person
from tests.browser.rest import Rest

MakePerson = Callable[..., Person]

# A long thread is written over REST, faster than the default rate limit allows.
SERVER_ENV = {"PALAVER_RATE_MESSAGES_BURST": "1000", "PALAVER_RATE_MESSAGES_PER_SECOND": "1000"}
# More than the 200 replies the panel once stopped at: five of its pages of 50.
LONG_THREAD = 210


def _room(person: MakePerson, prefix: str) -> tuple[Person, Person, str]:
    alice = person("alice")
    bob = person("bob")
    room = f"{prefix}-{alice.username[-6:]}"
    alice.create_room(room)
    bob.join_room(room)
    return alice, bob, room


def test_reply_quotes_the_original_and_jumps_to_it(person: MakePerson) -> None:
    alice, bob, _ = _room(person, "replies")
    alice.send("the <b>original</b>")
    # Enough after it that the original scrolls out of sight.
    for n in range(20):
        alice.send(f"filler {n}")
    expect(bob.message("filler 19")).to_be_visible()

    original = bob.message("the <b>original</b>")
    original.scroll_into_view_if_needed()
    original.hover()
    original.get_by_role("button", name="Reply", exact=True).click()
    preview = bob.page.locator("#reply-preview")
    expect(preview).to_be_visible()
    expect(preview.locator(".reply-quote-text")).to_have_text("the <b>original</b>")
    bob.page.get_by_role("button", name="Cancel reply").click()
    expect(preview).to_be_hidden()

    original.hover()
    original.get_by_role("button", name="Reply", exact=True).click()
    bob.send("my answer")
    expect(preview).to_be_hidden()

    answer = alice.message("my answer")
    quote = answer.locator(".reply-quote")
    expect(quote.locator(".reply-quote-text")).to_have_text("the <b>original</b>")
    expect(quote.locator(".reply-quote-name")).to_have_text("You")
    # User text stays text: no element was made from it.
    expect(alice.page.locator("#rows b")).to_have_count(0)
    target = alice.message("the <b>original</b>")
    expect(target).not_to_be_in_viewport()
    quote.click()
    expect(target).to_be_in_viewport()
    # The reply's author sees the quote too, naming the original's author.
    mine = bob.message("my answer").locator(".reply-quote")
    expect(mine.locator(".reply-quote-text")).to_have_text("the <b>original</b>")
    expect(mine.locator(".reply-quote-name")).to_have_text(alice.display_name)


def test_thread_between_two_users(person: MakePerson) -> None:
    alice, bob, room = _room(person, "threads")
    alice.send("root message")
    root_for_bob = bob.message("root message")
    root_for_bob.hover()
    root_for_bob.get_by_role("button", name="Reply in thread").click()
    bob_panel = bob.page.locator("#thread-panel")
    expect(bob_panel).to_be_visible()
    expect(bob_panel.locator("#thread-root .text")).to_have_text("root message")
    bob_input = bob_panel.get_by_role("textbox", name="Reply in thread")
    bob_input.fill("first reply")
    bob_input.press("Enter")
    expect(bob_panel.locator("#thread-replies .text")).to_have_text(["first reply"])

    # Alice sees a reply count with one unread on the root; the reply is not in the
    # main timeline.
    root_for_alice = alice.message("root message")
    count = root_for_alice.locator(".thread-count")
    expect(count).to_contain_text("1 reply")
    expect(count.locator(".thread-unread")).to_have_text("1 new")
    expect(alice.message("first reply")).to_have_count(0)

    count.click()
    alice_panel = alice.page.locator("#thread-panel")
    expect(alice_panel.locator("#thread-root .text")).to_have_text("root message")
    expect(alice_panel.locator("#thread-replies .text")).to_have_text(["first reply"])
    expect(count.locator(".thread-unread")).to_have_count(0)

    alice_input = alice_panel.get_by_role("textbox", name="Reply in thread")
    alice_input.fill("second reply")
    alice_input.press("Enter")
    # Live in bob's open panel, and counted on his root.
    expect(bob_panel.locator("#thread-replies .text")).to_have_text(["first reply", "second reply"])
    expect(root_for_bob.locator(".thread-count")).to_contain_text("2 replies")
    expect(root_for_bob.locator(".thread-unread")).to_have_count(0)

    # With his panel closed, a new reply is unread for bob.
    bob_panel.get_by_role("button", name="Close thread").click()
    expect(bob_panel).to_be_hidden()
    alice_input.fill("third reply")
    alice_input.press("Enter")
    expect(root_for_bob.locator(".thread-unread")).to_have_text("1 new")
    expect(alice_panel.locator("#thread-replies .text")).to_have_count(3)

    # Thread read cursors are the server's: after a reload, alice (who read the
    # thread) has nothing unread and bob still has his one.
    for who, badges in ((alice, 0), (bob, 1)):
        who.page.reload()
        who.expect_online()
        who.open(room)
        root = who.message("root message")
        expect(root.locator(".thread-count")).to_contain_text("3 replies")
        expect(root.locator(".thread-unread")).to_have_count(badges)


def test_a_long_thread_opens_on_its_latest_replies_and_loads_earlier_ones(
    person: MakePerson, server: PalaverServer
) -> None:
    alice, bob, room = _room(person, "long")
    alice.send("a long thread")
    api = Rest(server.url, bob)
    cid = api.conversation_id(room)
    history = api.call("GET", f"/api/conversations/{cid}/messages")["messages"]
    [root_id] = [m["message_id"] for m in history if m["content"] == "a long thread"]
    for n in range(LONG_THREAD):
        api.call(
            "POST",
            f"/api/conversations/{cid}/messages",
            {"content": f"reply {n}", "thread_root_id": root_id},
        )
    everything = [f"reply {n}" for n in range(LONG_THREAD)]

    root = alice.message("a long thread")
    expect(root.locator(".thread-count")).to_contain_text(f"{LONG_THREAD} replies")
    root.locator(".thread-count").click()
    panel = alice.page.locator("#thread-panel")
    replies = panel.locator("#thread-replies .text")
    # The latest page, scrolled to its newest reply; the count covers them all.
    expect(replies).to_have_text(everything[-50:])
    expect(replies.last).to_be_in_viewport()
    expect(panel.locator("#thread-status")).to_have_text(f"{LONG_THREAD} replies")
    earlier = panel.get_by_role("button", name="Load earlier replies")
    earlier.click()
    expect(replies).to_have_text(everything[-100:])
    # By keyboard: the button keeps the focus between pages, and once the first reply
    # is here it goes, leaving the focus in the thread.
    for shown in (150, 200, LONG_THREAD):
        expect(earlier).to_be_focused()
        alice.page.keyboard.press("Enter")
        expect(replies).to_have_count(shown)
    expect(replies).to_have_text(everything)
    expect(earlier).to_be_hidden()
    expect(panel.locator("#thread-replies")).to_be_focused()

    # A reply written now joins at the end, once.
    last_word = "the last word"
    api.call(
        "POST",
        f"/api/conversations/{cid}/messages",
        {"content": last_word, "thread_root_id": root_id},
    )
    expect(replies).to_have_text([*everything, last_word])
    expect(panel.locator("#thread-status")).to_have_text(f"{LONG_THREAD + 1} replies")


def test_reaction_picker_in_a_thread_stays_open_as_the_room_talks(person: MakePerson) -> None:
    alice, bob, _ = _room(person, "picker")
    alice.send("root message")
    root = bob.message("root message")
    root.hover()
    root.get_by_role("button", name="Reply in thread").click()
    panel = bob.page.locator("#thread-panel")
    reply_box = panel.get_by_role("textbox", name="Reply in thread")
    reply_box.fill("a reply")
    reply_box.press("Enter")
    reply = panel.locator("#thread-replies .thread-msg", has_text="a reply")
    expect(reply).to_have_attribute("data-seq", re.compile(r"^\d+$"))

    reply.hover()
    reply.get_by_role("button", name="React", exact=True).click()
    thumbs = reply.get_by_role("button", name="React 👍")
    expect(thumbs).to_be_focused()
    # Every message of the room redraws the panel under the open picker.
    alice.send("meanwhile in the room")
    expect(bob.message("meanwhile in the room")).to_be_visible()
    expect(thumbs).to_be_visible()
    expect(thumbs).to_be_focused()
    bob.page.keyboard.press("Enter")
    expect(reply.locator(".reaction")).to_have_text("👍 1")
