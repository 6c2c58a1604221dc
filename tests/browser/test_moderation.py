"""Moderation in the browser: an owner mutes and removes a member from the member list,
and notification settings stay with the account across a reload."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import expect

from tests.browser.people import Person

MakePerson = Callable[..., Person]


def test_owner_mutes_and_kicks_and_sets_notifications(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    room = f"mods-{alice.username[-6:]}"
    alice.create_room(room)
    bob.join_room(room)

    alice.page.get_by_role("button", name="Conversation details").click()
    expect(alice.page.locator("#members li")).to_have_count(2)
    # Bob, a plain member, gets no moderation buttons for Alice (the owner).
    bob.page.get_by_role("button", name="Conversation details").click()
    bob.page.get_by_role("button", name=f"Actions for {alice.display_name}").click()
    expect(bob.page.get_by_role("menuitem", name=f"Block {alice.display_name}")).to_be_visible()
    expect(bob.page.get_by_role("menuitem", name=f"Kick {alice.display_name}")).to_have_count(0)
    bob.page.keyboard.press("Escape")

    # Bob's row in Alice's list: the actions wait in its menu.
    alice.page.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    alice.page.get_by_role("menuitem", name=f"Mute {bob.display_name}").click()
    expect(alice.page.locator("#members .muted-badge")).to_have_count(1)
    alice.page.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    expect(alice.page.get_by_role("menuitem", name=f"Unmute {bob.display_name}")).to_be_visible()
    alice.page.keyboard.press("Escape")
    expect(
        bob.page.locator("#rows .row.system", has_text=f"muted {bob.display_name}")
    ).to_be_visible()

    # Notifications: mentions only, kept by the server across a reload.
    alice.page.locator("#notify-level").select_option("mentions")
    expect(alice.page.get_by_role("button", name="Unmute notifications")).to_be_visible()
    alice.page.reload()
    alice.expect_online()
    alice.open(room)
    alice.page.get_by_role("button", name="Conversation details").click()
    expect(alice.page.locator("#notify-level")).to_have_value("mentions")

    alice.page.once("dialog", lambda dialog: dialog.accept())
    alice.page.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    alice.page.get_by_role("menuitem", name=f"Kick {bob.display_name}").click()
    expect(bob.conversation(room)).to_have_count(0)
