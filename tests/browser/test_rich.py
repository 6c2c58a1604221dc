"""Reactions, edits and deletes in a real browser, seen live by the other person."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Dialog, expect

from tests.browser.people import Person

MakePerson = Callable[..., Person]


def test_react_edit_and_delete_live(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    room = f"rich-{alice.username[-6:]}"
    alice.create_room(room)
    bob.join_room(room)

    alice.send("helo world")
    expect(bob.message("helo world")).to_be_visible()
    bob.message("helo world").hover()
    bob.message("helo world").get_by_role("button", name="React 👍").click()
    expect(alice.message("helo world").locator(".reaction")).to_have_text("👍 1")

    def answer(dialog: Dialog) -> None:
        dialog.accept("hello world")

    alice.page.once("dialog", answer)
    alice.message("helo world").hover()
    alice.message("helo world").get_by_role("button", name="Edit").click()
    expect(bob.message("hello world").locator(".edited")).to_have_text("edited")
    expect(bob.message("hello world").locator(".reaction")).to_have_text("👍 1")

    alice.message("hello world").hover()
    alice.message("hello world").get_by_role("button", name="Delete").click()
    expect(bob.page.locator("#rows .bubble.deleted .text")).to_have_text("This message was deleted")
    # The reaction and edit entries are never rows of their own.
    expect(bob.page.locator("#rows .row.msg")).to_have_count(1)
