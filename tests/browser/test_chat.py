"""Two people chatting in a real browser: rooms, direct messages, ticks, unread counts,
reloads, hostile text and the phone-sized layout."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from playwright.sync_api import Dialog, expect

from tests.browser.conftest import PHONE, PalaverServer
from tests.browser.people import Person

MakePerson = Callable[..., Person]


def test_room_chat_with_typing_indicator(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    room = f"lobby-{alice.username[-6:]}"

    alice.create_room(room, topic="Anything goes")
    bob.join_room(room)
    # Alice sees Bob arrive as a system notice, live.
    expect(
        alice.page.locator("#rows .row.system", has_text=f"{bob.display_name} joined")
    ).to_be_visible()

    alice.send("Hello room!")
    expect(bob.message("Hello room!")).to_be_visible()
    expect(bob.message("Hello room!").locator(".sender")).to_have_text(alice.display_name)
    expect(bob.message("Hello room!").locator(".avatar")).to_have_text(
        "".join(word[0] for word in alice.display_name.split()).upper()
    )
    expect(alice.message("Hello room!")).to_have_class(re.compile(r"\bown\b"))

    # Typing shows on the other side, and stops when the message is sent.
    bob.page.locator("#composer-input").press_sequentially("Hi Al")
    expect(alice.page.locator("#typing")).to_have_text(f"{bob.display_name} is typing…")
    bob.page.locator("#composer-input").press_sequentially("ice")
    # Shift+Enter is a new line, Enter sends.
    bob.page.locator("#composer-input").press("Shift+Enter")
    bob.page.locator("#composer-input").press_sequentially("second line")
    bob.page.locator("#composer-input").press("Enter")
    expect(alice.message("Hi Alice\nsecond line")).to_be_visible()
    expect(alice.page.locator("#typing")).to_have_text("")

    # The room shows in both lists with the latest message as its preview.
    expect(alice.conversation(room).locator(".conv-preview")).to_contain_text("second line")
    expect(bob.conversation(room).locator(".conv-preview")).to_contain_text("You: Hi Alice")
    # One day separator above the messages.
    expect(bob.page.locator("#rows .row.day")).to_have_count(1)

    # Leaving removes the room from the list, once confirmed.
    bob.page.get_by_role("button", name="Conversation details").click()
    expect(bob.page.locator("#members li")).to_have_count(2)
    # Leaving asks first, in the page: Cancel keeps the room.
    bob.page.get_by_role("button", name="Leave room").click()
    leave = bob.page.get_by_role("dialog", name=f"Leave the room “{room}”?")
    expect(leave).to_contain_text("You can join it again")
    leave.get_by_role("button", name="Cancel").click()
    expect(leave).to_be_hidden()
    expect(bob.page.locator("#members li")).to_have_count(2)
    bob.page.get_by_role("button", name="Leave room").click()
    leave.get_by_role("button", name="Leave").click()
    expect(bob.conversation(room)).to_have_count(0)
    expect(
        alice.page.locator("#rows .row.system", has_text=f"{bob.display_name} left")
    ).to_be_visible()


def test_direct_chat_ticks_and_unread_badges(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")

    alice.start_direct(bob)
    alice.send("Are you there?")
    # Bob's list gains the conversation, with one unread message.
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")
    expect(bob.page).to_have_title("(1) Palaver")
    # Bob's client acknowledged delivery; nobody has read it yet.
    expect(alice.message("Are you there?")).to_have_attribute("data-status", "delivered")

    # With Bob offline a new message is only "sent" (acknowledged by the server).
    bob.set_offline(True)
    expect(bob.page.locator("#conn")).to_have_attribute("data-state", "offline")
    alice.send("Hello?")
    expect(alice.message("Hello?")).to_have_attribute("data-status", "sent")
    # Back online, Bob's client catches up and confirms delivery...
    bob.set_offline(False)
    bob.expect_online()
    expect(alice.message("Hello?")).to_have_attribute("data-status", "delivered")
    expect(bob.unread_badge(alice.display_name)).to_have_text("2")
    expect(bob.page).to_have_title("(2) Palaver")

    # ... and opening the conversation reads it: ticks turn "read", badges clear.
    bob.open(alice.display_name)
    expect(bob.page.locator("#rows .row.unread-marker")).to_have_count(1)
    expect(alice.message("Hello?")).to_have_attribute("data-status", "read")
    expect(alice.message("Are you there?")).to_have_attribute("data-status", "read")
    expect(bob.unread_badge(alice.display_name)).to_have_count(0)
    expect(bob.page).to_have_title("Palaver")

    # A second tab of Bob's (same session) agrees on unread counts with the first.
    second = bob.page.context.new_page()
    second.goto("/")
    second_item = Person(second, bob.username, bob.display_name).conversation(alice.display_name)
    expect(second_item).to_be_visible()
    expect(second_item.locator(".badge.unread")).to_have_count(0)
    bob.page.keyboard.press("Escape")  # back to the list: nothing is being read now
    expect(bob.page.locator("#conversation")).to_be_hidden()
    alice.send("Still there?")
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")
    expect(second_item.locator(".badge.unread")).to_have_text("1")
    # Reading it in one tab clears it in the other.
    bob.open(alice.display_name)
    expect(second_item.locator(".badge.unread")).to_have_count(0)
    expect(second).to_have_title("Palaver")
    second.close()

    # Bob answers; Alice sees it with his name in the header, not in the bubble.
    bob.send("Yes, here")
    expect(alice.message("Yes, here")).to_be_visible()
    expect(alice.message("Yes, here").locator(".sender")).to_have_count(0)
    expect(alice.page.locator("#conv-subtitle")).to_have_text("online")

    # The theme switch applies at once and is remembered.
    alice.page.get_by_role("button", name="Switch to light theme").click()
    expect(alice.page.locator("html")).to_have_attribute("data-theme", "light")
    alice.page.reload()
    expect(alice.page.locator("html")).to_have_attribute("data-theme", "light")
    alice.expect_online()


def test_reload_keeps_session_and_history(person: MakePerson, server: PalaverServer) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.start_direct(bob)
    for text in ("one", "two", "three"):
        alice.send(text)
    expect(bob.unread_badge(alice.display_name)).to_have_text("3")

    alice.page.reload()
    alice.expect_online()
    # Still signed in, same conversation open (it is in the URL), history loaded.
    expect(alice.page.locator("#conv-title")).to_have_text(bob.display_name)
    expect(alice.messages()).to_have_count(3)
    alice.expect_texts(["one", "two", "three"])
    assert alice.seqs() == sorted(alice.seqs())

    # The refresh token is an HttpOnly cookie; the page stores no token anywhere.
    cookies = {c["name"]: c for c in alice.page.context.cookies()}
    refresh = cookies["palaver_refresh"]
    assert refresh["httpOnly"] is True
    storage = alice.page.evaluate(
        "() => JSON.stringify({local: {...localStorage}, session: {...sessionStorage},"
        " cookie: document.cookie})"
    )
    assert refresh["value"] not in storage
    assert "eyJ" not in storage  # no JWT either
    assert json.loads(storage)["cookie"] == ""

    # Messages keep flowing after the reload, both ways.
    bob.open(alice.display_name)
    bob.send("four")
    expect(alice.message("four")).to_be_visible()
    alice.send("five")
    expect(bob.message("five")).to_be_visible()

    # Signing out ends the session: a reload shows the sign-in screen.
    alice.page.get_by_role("button", name=re.compile("account and settings")).click()
    alice.page.get_by_role("button", name="Log out").click()
    expect(alice.page.locator("#auth")).to_be_visible()
    alice.page.reload()
    expect(alice.page.locator("#auth")).to_be_visible()
    assert "palaver_refresh" not in {c["name"] for c in alice.page.context.cookies()}

    # And signing in again brings everything back.
    alice.page.locator('#login-form input[name="login"]').fill(alice.username)
    alice.page.locator('#login-form input[name="password"]').fill(alice.password)
    alice.page.get_by_role("button", name="Sign in").click()
    alice.expect_online()
    alice.open(bob.display_name)
    expect(alice.messages()).to_have_count(5)


def test_markup_in_messages_is_shown_as_text(person: MakePerson) -> None:
    hostile_name = "<img src=y onerror=alert(2)>"
    alice = person("alice", display_name=hostile_name)
    bob = person("bob")
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    for page in (alice.page, bob.page):
        page.on("dialog", record)

    alice.start_direct(bob)
    payloads = [
        "<img src=x onerror=alert(1)>",
        "<script>alert(1)</script>",
        '"><svg onload=alert(3)>',
        "javascript:alert(4) and https://example.com/?q=<b>",
    ]
    for text in payloads:
        alice.send(text)
    # The hostile display name is text too, in the list and in the header.
    expect(bob.unread_badge(hostile_name)).to_have_text(str(len(payloads)))
    bob.open(hostile_name)
    expect(bob.page.locator("#conv-title")).to_have_text(hostile_name)
    for text in payloads:
        expect(bob.message(text)).to_be_visible()
        expect(alice.message(text)).to_be_visible()

    for page in (alice.page, bob.page):
        injected = page.evaluate(
            """() => ({
                img: document.querySelectorAll('#rows img, #conv-list img').length,
                script: document.querySelectorAll('#rows script').length,
                svg: document.querySelectorAll('#rows svg[onload]').length,
                bold: document.querySelectorAll('#rows b').length,
                links: [...document.querySelectorAll('#rows a')].map(a => a.href),
            })"""
        )
        assert injected["img"] == 0
        assert injected["script"] == 0
        assert injected["svg"] == 0
        assert injected["bold"] == 0
        # Only the http(s) URL became a link; "javascript:" stayed text.
        assert injected["links"] == ["https://example.com/?q="]
    assert dialogs == []

    # The length counter appears near the limit and blocks sending past it.
    box = bob.page.locator("#composer-input")
    box.fill("x" * 4_999)
    expect(bob.page.locator("#counter")).to_have_text("4,999 / 5,000")
    box.press_sequentially("yz")
    expect(bob.page.locator("#counter")).to_have_class(re.compile(r"\bover\b"))
    expect(bob.page.locator("#send-button")).to_be_disabled()
    box.fill("short again")
    expect(bob.page.locator("#counter")).to_be_hidden()


def test_phone_layout(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob", viewport=PHONE)
    alice.start_direct(bob)
    alice.send("Hi on your phone")

    page = bob.page
    sidebar = page.locator("#sidebar")
    pane = page.locator("#pane")
    expect(sidebar).to_be_visible()
    expect(pane).to_be_hidden()
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")

    bob.open(alice.display_name)
    expect(sidebar).to_be_hidden()
    expect(pane).to_be_visible()
    expect(page.locator("#back")).to_be_visible()
    expect(bob.message("Hi on your phone")).to_be_visible()
    bob.send("Hello from the phone")
    expect(alice.message("Hello from the phone")).to_be_visible()
    expect(bob.message("Hello from the phone")).to_have_attribute("data-status", "read")
    expect(alice.message("Hi on your phone")).to_have_attribute("data-status", "read")

    # The details panel covers the screen; Esc closes it.
    page.get_by_role("button", name="Conversation details").click()
    expect(page.locator("#info-panel")).to_be_visible()
    page.keyboard.press("Escape")
    expect(page.locator("#info-panel")).to_be_hidden()

    page.get_by_role("button", name="Back to conversations").click()
    expect(sidebar).to_be_visible()
    expect(pane).to_be_hidden()
    # The browser's back button works the same way.
    bob.open(alice.display_name)
    page.go_back()
    expect(sidebar).to_be_visible()
    expect(pane).to_be_hidden()


def test_private_group_with_members(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    carol = person("carol")
    group = f"plans-{alice.username[-6:]}"

    page = alice.page
    page.get_by_role("button", name="New group").click()
    dialog = page.locator("#group-dialog")
    dialog.locator('input[name="name"]').fill(group)
    dialog.locator("#group-search").fill(bob.username)
    dialog.get_by_role("button", name=f"Add {bob.display_name} to the group").click()
    expect(dialog.locator("#group-chosen li")).to_have_count(1)
    dialog.get_by_role("button", name="Create group").click()
    expect(dialog).to_be_hidden()
    expect(page.locator("#conv-title")).to_have_text(group)
    expect(page.locator("#conv-subtitle")).to_contain_text("2 members")

    # Bob's list gains the group live; Carol, not a member, sees nothing.
    expect(bob.conversation(group)).to_be_visible()
    alice.send("Welcome to the group")
    expect(bob.unread_badge(group)).to_have_text("1")
    bob.open(group)
    expect(bob.message("Welcome to the group")).to_be_visible()
    expect(carol.conversation(group)).to_have_count(0)

    # The owner adds Carol from the details panel.
    page.get_by_role("button", name="Conversation details").click()
    panel = page.locator("#info-panel")
    expect(panel.locator("#members li")).to_have_count(2)
    expect(panel.locator("#members li", has_text=alice.display_name).locator(".role")).to_have_text(
        "owner"
    )
    panel.locator("#add-member-search").fill(carol.username)
    panel.get_by_role("button", name=f"Add {carol.display_name}").click()
    expect(panel.locator("#members li")).to_have_count(3)
    expect(
        page.locator("#rows .row.system", has_text=f"added {carol.display_name}")
    ).to_be_visible()

    # Carol gets the group and takes part; everyone sees her by name.
    expect(carol.conversation(group)).to_be_visible()
    carol.open(group)
    carol.send("Thanks for having me")
    for other in (alice, bob):
        message = other.message("Thanks for having me")
        expect(message).to_be_visible()
        expect(message.locator(".sender")).to_have_text(carol.display_name)
    # The search box filters the list by name.
    alice.start_direct(bob)
    expect(page.locator("#conv-list li")).to_have_count(2)
    page.locator("#search").fill(group[:8])
    expect(page.locator("#conv-list li")).to_have_count(1)
    expect(alice.conversation(group)).to_be_visible()
    page.locator("#search").press("Escape")
    expect(page.locator("#conv-list li")).to_have_count(2)

    # Bob is a plain member: he may not add people, but he may leave.
    bob.page.get_by_role("button", name="Conversation details").click()
    expect(bob.page.locator("#add-member")).to_be_hidden()
    expect(bob.page.get_by_role("button", name="Leave group")).to_be_visible()


def test_keyboard_only(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.start_direct(bob)
    alice.send("Can you reply without a mouse?")
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")
    page = bob.page
    keyboard = page.keyboard

    # Ctrl+K goes to the search box, arrows into the list, Enter opens.
    keyboard.press("Control+k")
    expect(page.locator("#search")).to_be_focused()
    keyboard.press("ArrowDown")
    item = bob.conversation(alice.display_name).locator("button")
    expect(item).to_be_focused()
    keyboard.press("Enter")
    expect(page.locator("#conv-title")).to_have_text(alice.display_name)
    expect(page.locator("#composer-input")).to_be_focused()
    keyboard.type("Yes I can")
    keyboard.press("Enter")
    expect(alice.message("Yes I can")).to_be_visible()

    # Esc leaves the conversation and puts focus back on it in the list.
    keyboard.press("Escape")
    expect(page.locator("#conversation")).to_be_hidden()
    expect(item).to_be_focused()

    # Dialogs open from the keyboard, close with Esc and give focus back.
    rooms = page.get_by_role("button", name="Browse rooms")
    rooms.focus()
    keyboard.press("Enter")
    expect(page.locator("#rooms-dialog")).to_be_visible()
    expect(page.locator("#rooms-search")).to_be_focused()
    keyboard.press("Escape")
    expect(page.locator("#rooms-dialog")).to_be_hidden()
    expect(rooms).to_be_focused()

    # Tab reaches every control, and each has an accessible name.
    bob.open(alice.display_name)
    page.locator("#me-button").focus()
    reached = []
    for _ in range(40):
        # Past the last control focus leaves the page for the browser's own UI.
        if page.evaluate("() => document.activeElement !== document.body"):
            focused = page.locator(":focus")
            expect(focused).to_have_accessible_name(re.compile(r"\S"))
            reached.append(focused.evaluate("el => el.id || el.dataset.conversationId"))
        keyboard.press("Tab")
    for control in (
        "me-button",
        "theme-toggle",
        "rooms-button",
        "group-button",
        "search",
        "mute-button",
        "info-button",
        "messages",
        "composer-input",
        "send-button",
    ):
        assert control in reached, (control, reached)


def test_a_room_filter_that_finds_nothing_says_so(person: MakePerson) -> None:
    alice = person("alice")
    room = f"knitting-{alice.username[-6:]}"
    alice.create_room(room)
    page = alice.page
    page.get_by_role("button", name="Browse rooms").click()
    dialog = page.locator("#rooms-dialog")
    expect(dialog.get_by_role("button", name=f"Open {room}")).to_be_visible()

    # Rooms exist: the filter found none, which is not "no rooms yet".
    dialog.locator("#rooms-search").fill("zz-no-such-room")
    expect(dialog.locator("#rooms-list li")).to_have_count(0)
    expect(dialog.locator("#rooms-empty")).to_have_text("No room matches “zz-no-such-room”.")
    dialog.locator("#rooms-search").fill(room)
    expect(dialog.get_by_role("button", name=f"Open {room}")).to_be_visible()
    expect(dialog.locator("#rooms-empty")).to_be_hidden()
