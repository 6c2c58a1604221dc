"""Reactions, edits and deletes in a real browser, seen live by the other person."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import Dialog, expect

from tests.browser.conftest import PalaverServer
from tests.browser.people import Person
from tests.browser.rest import Rest

MakePerson = Callable[..., Person]


def test_react_edit_and_delete_live(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.open_room_with("rich", bob)

    alice.send("helo world")
    expect(bob.message("helo world")).to_be_visible()
    bob.message("helo world").hover()
    bob.message("helo world").get_by_role("button", name="React", exact=True).click()
    bob.message("helo world").get_by_role("button", name="React 👍").click()
    expect(alice.message("helo world").locator(".reaction")).to_have_text("👍 1")

    # Edited in the composer, which says so; no browser dialog is involved.
    dialogs: list[Dialog] = []
    alice.page.on("dialog", lambda dialog: dialogs.append(dialog))
    alice.message("helo world").hover()
    alice.message("helo world").get_by_role("button", name="Edit").click()
    composer = alice.page.locator("#composer-input")
    expect(composer).to_have_value("helo world")
    expect(alice.page.locator("#edit-preview")).to_contain_text("Editing")
    composer.fill("hello world")
    composer.press("Enter")
    expect(alice.page.locator("#edit-preview")).to_be_hidden()
    expect(composer).to_have_value("")
    expect(bob.message("hello world").locator(".edited")).to_have_text("edited")
    expect(bob.message("hello world").locator(".reaction")).to_have_text("👍 1")

    alice.delete("hello world")
    assert dialogs == []
    expect(bob.page.locator("#rows .bubble.deleted .text")).to_have_text("This message was deleted")
    # The reaction and edit entries are never rows of their own.
    expect(bob.page.locator("#rows .row.msg")).to_have_count(1)


def test_reaction_picker_stays_open_while_others_react(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.open_room_with("picker", bob)
    alice.send("lunch?")
    expect(bob.message("lunch?")).to_be_visible()

    row = bob.message("lunch?")
    row.hover()
    row.get_by_role("button", name="React", exact=True).click()
    thumbs = row.get_by_role("button", name="React 👍")
    expect(thumbs).to_be_focused()
    # Alice's reaction redraws the bubble Bob is choosing a reaction for.
    alice.message("lunch?").hover()
    alice.message("lunch?").get_by_role("button", name="React", exact=True).click()
    alice.message("lunch?").get_by_role("button", name="React ❤️").click()
    expect(row.locator(".reaction")).to_have_text("❤️ 1")
    expect(row.get_by_role("button", name="React", exact=True)).to_have_attribute(
        "aria-expanded", "true"
    )
    expect(thumbs).to_be_visible()
    expect(thumbs).to_be_focused()
    bob.page.keyboard.press("Enter")
    expect(alice.message("lunch?").locator(".reaction")).to_have_text(["❤️ 1", "👍 1"])


def test_the_toolbar_stays_under_the_pointer_while_its_message_is_redrawn(
    person: MakePerson,
) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.open_room_with("point", bob)
    alice.send("lunch?")
    mine = alice.message("lunch?")
    expect(mine).to_have_attribute("data-status", "read")

    # Alice points at Delete, on the toolbar that juts out above her bubble.
    mine.hover()
    mine.get_by_role("button", name="Delete").hover()
    toolbar = mine.locator(".msg-actions")
    expect(toolbar).to_have_css("opacity", "1")
    # Bob's reaction redraws the message under her pointer: the toolbar stays, and
    # still takes the click.
    theirs = bob.message("lunch?")
    theirs.hover()
    theirs.get_by_role("button", name="React", exact=True).click()
    expect(theirs.get_by_role("button", name="React 👍")).to_be_focused()
    bob.page.keyboard.press("Enter")
    expect(mine.locator(".reaction")).to_have_text("👍 1")
    expect(toolbar).to_have_css("opacity", "1")
    expect(toolbar).to_have_css("pointer-events", "auto")
    # Once the pointer moves off the message the toolbar goes, as it does unredrawn.
    alice.page.mouse.move(1, 1)
    expect(toolbar).to_have_css("opacity", "0")


@pytest.mark.parametrize("reloaded", [False, True], ids=["held", "counted-by-the-server"])
def test_a_message_deleted_before_it_is_read_leaves_the_unread_count(
    person: MakePerson, reloaded: bool
) -> None:
    """The server stops counting a deleted message at once; the open page must agree
    with what a reload (or another device) shows, whether it holds the messages (they
    arrived live) or not (after a reload, the server's count covers them)."""
    alice = person("alice")
    bob = person("bob")
    alice.start_direct(bob)
    alice.send("see you at noon")
    alice.send("oops, wrong chat")
    expect(bob.unread_badge(alice.display_name)).to_have_text("2")
    expect(bob.page).to_have_title("(2) Palaver")
    if reloaded:
        bob.page.reload()
        bob.expect_online()
        expect(bob.unread_badge(alice.display_name)).to_have_text("2")

    alice.delete("see you at noon")
    expect(bob.unread_badge(alice.display_name)).to_have_text("1")
    expect(bob.page).to_have_title("(1) Palaver")
    alice.delete("oops, wrong chat")
    expect(bob.unread_badge(alice.display_name)).to_have_count(0)
    expect(bob.page).to_have_title("Palaver")

    bob.page.reload()
    bob.expect_online()
    expect(bob.conversation(alice.display_name)).to_be_visible()
    expect(bob.unread_badge(alice.display_name)).to_have_count(0)


def test_a_deleted_message_is_read_out_as_deleted(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.start_direct(bob)
    alice.send("the secret plan")
    bob.open(alice.display_name)
    row = bob.message("the secret plan")
    expect(row).to_have_attribute("aria-label", re.compile(r": the secret plan\. "))
    alice.delete("the secret plan")
    # The bubble says so; a screen reader hears the same, not an empty message.
    last = bob.page.locator("#rows .row.msg").last
    expect(last).to_have_attribute("aria-label", re.compile(r": This message was deleted\. "))


def test_pin_is_offered_only_to_those_who_may_pin_in_a_room(
    person: MakePerson, server: PalaverServer
) -> None:
    alice = person("alice")
    bob = person("bob")
    room = alice.open_room_with("pins", bob)
    alice.send("house rules")
    expect(bob.message("house rules")).to_be_visible()

    # In a room only owners and admins pin: a member gets no button that does nothing.
    bob.message("house rules").hover()
    expect(
        bob.message("house rules").get_by_role("button", name="React", exact=True)
    ).to_be_visible()
    expect(bob.message("house rules").get_by_role("button", name="Pin")).to_have_count(0)
    alice.message("house rules").hover()
    expect(alice.message("house rules").get_by_role("button", name="Pin")).to_be_visible()

    # Made an admin, the member may pin, at once.
    owner = Rest(server.url, alice)
    room_id = owner.conversation_id(room)
    bob_id = Rest(server.url, bob).user_id
    owner.call("PUT", f"/api/conversations/{room_id}/members/{bob_id}/role", {"role": "admin"})
    bob.page.mouse.move(0, 0)
    bob.message("house rules").hover()
    bob.message("house rules").get_by_role("button", name="Pin").click()
    expect(alice.message("house rules").locator(".pinned")).to_be_visible()


def test_a_refused_edit_says_why_and_gives_the_text_back(
    person: MakePerson, server: PalaverServer
) -> None:
    alice = person("alice")
    bob = person("bob")
    room = alice.open_room_with("edits", bob)
    owner = Rest(server.url, alice)
    room_id = owner.conversation_id(room)
    owner.call(
        "PUT", f"/api/conversations/{room_id}/filter", {"words": ["frobnicate"], "action": "reject"}
    )
    bob.send("see you later")

    bob.message("see you later").hover()
    bob.message("see you later").get_by_role("button", name="Edit").click()
    composer = bob.page.locator("#composer-input")
    composer.fill("see you later, frobnicate")
    composer.press("Enter")
    # Told, and the edit is still there to change rather than lost.
    expect(bob.page.locator("#toasts .toast.error")).to_contain_text("Could not edit the message")
    expect(bob.page.locator("#edit-preview")).to_be_visible()
    expect(composer).to_have_value("see you later, frobnicate")
    composer.fill("see you much later")
    composer.press("Enter")
    expect(alice.message("see you much later").locator(".edited")).to_have_text("edited")
    expect(composer).to_have_value("")

    # An edit longer than a message may be is held back in the composer, as a send is.
    bob.message("see you much later").hover()
    bob.message("see you much later").get_by_role("button", name="Edit").click()
    too_long = "x" * 5001
    composer.fill(too_long)
    expect(bob.page.locator("#send-button")).to_be_disabled()
    composer.press("Enter")
    expect(composer).to_have_value(too_long)
    expect(bob.page.locator("#edit-preview")).to_be_visible()
    composer.press("Escape")
    expect(bob.page.locator("#edit-preview")).to_be_hidden()
    expect(composer).to_have_value("")
    expect(alice.message("see you much later")).to_be_visible()
