"""The web client's finishing touches in a real browser: member menus in the details
panel, a timeline that stays at the bottom while images load, the thread panel beside
the conversation, list previews of deletions and thread replies, renames shown as they
happen, and a signed-out page load that asks the server nothing it would refuse."""

from __future__ import annotations

from collections.abc import Callable

from playwright.sync_api import Page, expect

from tests import media
from tests.browser.conftest import PHONE, PalaverServer
from tests.browser.people import Person
from tests.browser.rest import Rest

MakePerson = Callable[..., Person]

AT_BOTTOM = """() => {
  const box = document.getElementById('messages');
  const img = document.querySelector('#rows .row.msg:last-child .attach-image img');
  return img !== null && img.complete && img.naturalWidth > 0
    && Math.abs(box.scrollHeight - box.scrollTop - box.clientHeight) <= 2;
}"""


def _room(person: MakePerson, prefix: str) -> tuple[Person, Person, str]:
    alice = person("alice")
    bob = person("bob")
    return alice, bob, alice.open_room_with(prefix, bob)


def _send_image(who: Person, name: str = "tall.png") -> None:
    page = who.page
    page.locator(".attach-input").set_input_files(
        [{"name": name, "mimeType": "image/png", "buffer": media.image("PNG", (300, 600))}]
    )
    expect(page.locator('#attach-tray .attach-chip[data-state="ready"]')).to_have_count(1)
    page.locator("#composer-input").press("Enter")
    expect(page.locator("#attach-tray")).to_be_hidden()


def test_member_rows_show_names_and_a_menu(person: MakePerson) -> None:
    alice, bob, _ = _room(person, "members")
    page = alice.page
    page.get_by_role("button", name="Conversation details").click()
    row = page.locator("#members li.member", has_text=bob.display_name)
    name = row.locator(".member-name")
    expect(name).to_have_text(bob.display_name)
    box = name.bounding_box()
    assert box is not None
    assert box["width"] > 40, box
    # The moderation actions wait behind one compact button.
    expect(row.get_by_role("menuitem")).to_have_count(0)
    expect(row.get_by_role("button")).to_have_count(1)
    row.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    menu = row.get_by_role("menu")
    expect(menu).to_be_visible()
    expect(menu.get_by_role("menuitem", name=f"Make admin {bob.display_name}")).to_be_visible()
    page.keyboard.press("Escape")
    expect(menu).to_be_hidden()
    row.get_by_role("button", name=f"Actions for {bob.display_name}").click()
    menu.get_by_role("menuitem", name=f"Make admin {bob.display_name}").click()
    expect(row.locator(".role")).to_have_text("admin")


def test_opening_on_an_image_lands_at_the_very_bottom(person: MakePerson) -> None:
    alice, bob, room = _room(person, "pinned")
    for n in range(15):
        alice.send(f"line {n}")
    _send_image(alice)
    # Bob, at the bottom, sees the image arrive and stays at the bottom.
    bob.page.wait_for_function(AT_BOTTOM)
    # Opening the conversation afresh (the image loads after the first scroll).
    bob.page.reload()
    bob.expect_online()
    bob.open(room)
    bob.page.wait_for_function(AT_BOTTOM)
    thumb = bob.page.locator("#rows .attach-image img").last
    box = thumb.bounding_box()
    assert box is not None
    assert round(box["height"]) == 240, box


def test_thread_panel_sits_beside_the_conversation_on_desktops(person: MakePerson) -> None:
    alice, bob, _ = _room(person, "beside")
    alice.send("root")
    root = bob.message("root")
    root.hover()
    root.get_by_role("button", name="Reply in thread").click()
    panel = bob.page.locator("#thread-panel")
    expect(panel).to_be_visible()
    timeline = bob.page.locator("#messages").bounding_box()
    side = panel.bounding_box()
    assert timeline is not None
    assert side is not None
    assert timeline["x"] + timeline["width"] <= side["x"] + 1, (timeline, side)
    bob.page.get_by_role("button", name="Close thread").click()
    widened = bob.page.locator("#messages").bounding_box()
    assert widened is not None
    assert widened["width"] > timeline["width"]


def test_list_preview_after_a_deletion_and_a_thread_reply(person: MakePerson) -> None:
    alice, bob, room = _room(person, "preview")
    alice.send("keep me")
    alice.send("remove me")
    preview = alice.conversation(room).locator(".conv-preview")
    expect(preview).to_have_text("You: remove me")
    alice.delete("remove me")
    expect(preview).to_have_text("Message deleted")
    expect(preview).to_have_css("font-style", "italic")

    message = bob.message("keep me")
    message.hover()
    message.get_by_role("button", name="Reply in thread").click()
    reply = bob.page.get_by_role("textbox", name="Reply in thread")
    reply.fill("in the thread")
    reply.press("Enter")
    expect(alice.message("keep me").locator(".thread-count")).to_contain_text("1 reply")
    expect(preview).to_have_text("Message deleted")
    for who in (alice, bob):
        who.page.reload()
        who.expect_online()
        expect(who.conversation(room).locator(".conv-preview")).not_to_contain_text("in the thread")


def test_a_room_renamed_elsewhere_is_renamed_in_the_page_at_once(
    person: MakePerson, server: PalaverServer
) -> None:
    alice, bob, room = _room(person, "before")
    api = Rest(server.url, alice)
    cid = api.conversation_id(room)
    renamed = f"after-{alice.username[-6:]}"
    api.call("PATCH", f"/api/conversations/{cid}", {"name": renamed})
    for who in (alice, bob):
        expect(who.page.locator("#conv-title")).to_have_text(renamed)
        expect(who.conversation(renamed)).to_be_visible()
        expect(who.conversation(room)).to_have_count(0)
        expect(who.page.locator("#conv-subtitle")).to_contain_text("2 members")


def test_signed_out_page_load_asks_for_no_refresh(new_page: Callable[..., Page]) -> None:
    page = new_page()
    refreshes: list[str] = []
    errors: list[str] = []
    page.on("request", lambda r: refreshes.append(r.url) if "/auth/refresh" in r.url else None)
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.reload()
    expect(page.locator("#auth")).to_be_visible()
    page.get_by_role("tab", name="Create account").click()
    expect(page.locator("#register-form")).to_be_visible()
    assert refreshes == []
    assert errors == []


def test_actions_wait_for_interaction_and_ask_before_deleting(person: MakePerson) -> None:
    alice = person("alice", viewport=PHONE)
    bob = person("bob")
    alice.open_room_with("acts", bob)
    alice.send("first")
    alice.send("second")
    page = alice.page
    page.mouse.move(1, 1)
    toolbars = page.locator("#rows .msg-actions")
    expect(toolbars).to_have_count(2)
    # Rows are rebuilt as their ticks change: each check finds its toolbar afresh.
    for index in range(2):
        expect(toolbars.nth(index)).to_have_css("opacity", "0")

    # Cancelling the confirmation keeps the message, for everyone.
    row = alice.message("second")
    row.hover()
    row.get_by_role("button", name="Delete").click()
    dialog = page.get_by_role("dialog", name="Delete message?")
    dialog.get_by_role("button", name="Cancel").click()
    expect(dialog).to_be_hidden()
    expect(alice.message("second")).to_have_count(1)

    # Escape leaves editing and gives the draft back.
    composer = page.locator("#composer-input")
    composer.fill("a draft")
    row.hover()
    row.get_by_role("button", name="Edit").click()
    expect(composer).to_have_value("second")
    composer.press("Escape")
    expect(page.locator("#edit-preview")).to_be_hidden()
    expect(composer).to_have_value("a draft")
    expect(bob.message("second")).to_have_count(1)
    expect(bob.page.locator("#rows .edited")).to_have_count(0)


def test_the_toolbar_shows_for_the_keyboard_and_after_a_tap(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob", viewport=PHONE, touch=True)
    alice.open_room_with("bars", bob)
    alice.send("hello")
    mine = alice.message("hello")
    expect(mine).to_have_attribute("data-status", "read")

    # With the pointer elsewhere, the keyboard's focus on the toolbar shows it.
    alice.page.mouse.move(1, 1)
    toolbar = mine.locator(".msg-actions")
    expect(toolbar).to_have_css("opacity", "0")
    mine.get_by_role("button", name="React", exact=True).focus()
    expect(toolbar).to_have_css("opacity", "1")

    # A touch screen has no hover: a tap on the bubble shows it.
    theirs = bob.message("hello")
    expect(theirs.locator(".msg-actions")).to_have_css("opacity", "0")
    theirs.locator(".text").tap()
    expect(theirs.locator(".msg-actions")).to_have_css("opacity", "1")


ASK_TWICE = """async () => {
  const script = [...document.scripts].find((s) => s.src.endsWith('/js/main.js'));
  const { confirmAction } = await import(script.src.replace(/main\\.js$/, 'confirm.js'));
  const first = confirmAction({ title: 'First', text: 'first question', action: 'Yes' });
  window.secondAnswer = null;
  confirmAction({ title: 'Second', text: 'second question', action: 'Do it' })
    .then((value) => { window.secondAnswer = value; });
  return await first;
}"""


def test_a_second_question_replaces_the_first_and_gets_its_own_answer(
    new_page: Callable[..., Page],
) -> None:
    page = new_page()
    assert page.evaluate(ASK_TWICE) is False  # the first is answered Cancel
    dialog = page.locator("#confirm-dialog")
    expect(dialog.locator("#confirm-title")).to_have_text("Second")
    expect(dialog).to_be_visible()
    page.wait_for_timeout(100)  # the first question's close event is delivered by now
    expect(dialog).to_be_visible()
    assert page.evaluate("window.secondAnswer") is None
    dialog.locator(".confirm-ok").click()
    page.wait_for_function("() => window.secondAnswer !== null")
    assert page.evaluate("window.secondAnswer") is True
