"""Moderation in the browser: an owner mutes and removes a member from the member list,
and notification settings stay with the account across a reload; kick, ban and block
ask first, in the page."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Dialog, expect

from tests.browser.conftest import PalaverServer
from tests.browser.people import Person
from tests.browser.rest import Rest

MakePerson = Callable[..., Person]


def test_owner_mutes_and_kicks_and_sets_notifications(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    room = alice.open_room_with("mods", bob)

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

    alice.page.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    alice.page.get_by_role("menuitem", name=f"Kick {bob.display_name}").click()
    confirm = alice.page.get_by_role("dialog", name=f"Remove {bob.display_name}?")
    confirm.get_by_role("button", name="Remove").click()
    expect(bob.conversation(room)).to_have_count(0)


def test_kick_ban_and_block_ask_in_the_page_first(
    person: MakePerson, server: PalaverServer
) -> None:
    alice = person("alice")
    bob = person("bob")
    carol = person("carol")
    room = alice.open_room_with("asks", bob, carol)
    page = alice.page
    native: list[str] = []

    def refuse(dialog: Dialog) -> None:
        native.append(dialog.message)
        dialog.dismiss()

    page.on("dialog", refuse)
    asked: list[str] = []
    page.on(
        "request",
        lambda request: (
            asked.append(request.url) if re.search(r"/(kick|bans|block)$", request.url) else None
        ),
    )
    page.get_by_role("button", name="Conversation details").click()
    expect(page.locator("#members li")).to_have_count(3)

    def choose(action: str, who: Person) -> None:
        page.get_by_role("button", name=f"Actions for {who.display_name}").click()
        page.get_by_role("menuitem", name=f"{action} {who.display_name}").click()

    # Each asks first, naming the person and saying what follows; the button that
    # does it has the focus.
    choose("Kick", bob)
    kick = page.get_by_role("dialog", name=f"Remove {bob.display_name}?")
    expect(kick).to_be_visible()
    expect(kick).to_contain_text(
        f"{bob.display_name} will be removed from the room “{room}” at once."
    )
    expect(kick.get_by_role("button", name="Remove")).to_be_focused()
    # Escape cancels, and the focus goes back to the menu's button.
    page.keyboard.press("Escape")
    expect(kick).to_be_hidden()
    expect(page.get_by_role("button", name=f"Actions for {bob.display_name}")).to_be_focused()

    choose("Ban", bob)
    ban = page.get_by_role("dialog", name=f"Ban {bob.display_name}?")
    expect(ban).to_contain_text("cannot come back")
    expect(ban.get_by_role("button", name="Ban")).to_be_focused()
    ban.get_by_role("button", name="Cancel").click()
    expect(ban).to_be_hidden()

    choose("Block", carol)
    block = page.get_by_role("dialog", name=f"Block {carol.display_name}?")
    expect(block).to_contain_text(f"{carol.display_name} will no longer see when you are online")
    block.get_by_role("button", name="Cancel").click()
    expect(block).to_be_hidden()

    # Cancelled, nothing was asked of the server. A mute, done after, is the fence:
    # once its badge shows, anything sent before it has been answered.
    choose("Mute", bob)
    expect(page.locator("#members .muted-badge")).to_have_count(1)
    assert asked == []
    expect(page.locator("#members li")).to_have_count(3)
    expect(bob.conversation(room)).to_have_count(1)
    expect(carol.conversation(room)).to_have_count(1)
    alice_api = Rest(server.url, alice)
    assert alice_api.call("GET", "/api/users/me/blocks") == []

    # Confirmed, each is done: Block by its button, Kick by Enter, Ban by its button.
    choose("Block", carol)
    block.get_by_role("button", name="Block").click()
    expect(block).to_be_hidden()
    carol_id = Rest(server.url, carol).user_id
    expect(page.locator("#toasts")).to_contain_text(f"{carol.display_name} blocked")
    assert [b["user_id"] for b in alice_api.call("GET", "/api/users/me/blocks")] == [carol_id]

    choose("Kick", carol)
    expect(page.get_by_role("dialog", name=f"Remove {carol.display_name}?")).to_be_visible()
    page.keyboard.press("Enter")
    expect(carol.conversation(room)).to_have_count(0)

    choose("Ban", bob)
    ban.get_by_role("button", name="Ban").click()
    expect(bob.conversation(room)).to_have_count(0)
    expect(page.locator("#members li")).to_have_count(1)
    conversation_id = alice_api.conversation_id(room)
    bans = alice_api.call("GET", f"/api/conversations/{conversation_id}/bans")
    assert [b["user_id"] for b in bans] == [Rest(server.url, bob).user_id]
    assert native == []


def test_a_member_menu_stays_open_while_the_member_list_changes(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    carol = person("carol")
    room = alice.open_room_with("menus", bob)
    page = alice.page
    page.get_by_role("button", name="Conversation details").click()
    expect(page.locator("#members li")).to_have_count(2)
    actions = page.get_by_role("button", name=f"Actions for {bob.display_name}")
    actions.click()
    menu = page.get_by_role("menu", name=f"Actions for {bob.display_name}")
    first = menu.get_by_role("menuitem").first
    expect(first).to_be_focused()

    # Carol joining redraws the member list under the open menu: it stays, focused.
    carol.join_room(room)
    expect(page.locator("#members li")).to_have_count(3)
    expect(menu).to_be_visible()
    expect(first).to_be_focused()
    # And it is still the menu that Escape closes, giving the focus back to its button.
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    expect(actions).to_be_focused()
    expect(page.locator("#info-panel")).to_be_visible()


def test_the_focus_comes_back_to_the_member_menu_after_a_redraw_under_a_question(
    person: MakePerson,
) -> None:
    """A question asked from a member's menu, answered after the member list was redrawn
    (someone joined meanwhile): the focus goes back to that member's menu button in the
    new list, not to the page."""
    alice = person("alice")
    bob = person("bob")
    carol = person("carol")
    room = alice.open_room_with("refocus", bob)
    page = alice.page
    page.get_by_role("button", name="Conversation details").click()
    expect(page.locator("#members li")).to_have_count(2)
    before = page.locator("#members .more-button").first.element_handle()
    page.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    page.get_by_role("menuitem", name=f"Kick {bob.display_name}").click()
    kick = page.get_by_role("dialog", name=f"Remove {bob.display_name}?")
    expect(kick.get_by_role("button", name="Remove")).to_be_focused()

    carol.join_room(room)
    expect(page.locator("#members li")).to_have_count(3)
    # The list was drawn anew: the button that opened the question is gone.
    assert before is not None
    assert not before.evaluate("(node) => node.isConnected")
    page.keyboard.press("Escape")
    expect(kick).to_be_hidden()
    expect(page.get_by_role("button", name=f"Actions for {bob.display_name}")).to_be_focused()
    expect(bob.conversation(room)).to_have_count(1)
