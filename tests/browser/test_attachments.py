"""Attachments in a real browser: attach an image and a file, the other side sees the
thumbnail, opens the full image and downloads the file; hostile names stay text."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import Dialog, expect

from tests import media
from tests.browser.people import Person

MakePerson = Callable[..., Person]
HOSTILE = "<img src=x onerror=alert(1)>&amp;.pdf"
# The server keeps no angle brackets in names; the entity stays text, never markup.
SHOWN = "_img src=x onerror=alert(1)_&amp;.pdf"


def test_send_and_open_attachments(person: MakePerson) -> None:
    alice = person("alice")
    bob = person("bob")
    dialogs: list[str] = []

    def record(dialog: Dialog) -> None:
        dialogs.append(dialog.message)
        dialog.dismiss()

    for page in (alice.page, bob.page):
        page.on("dialog", record)
    room = alice.open_room_with("files", bob)

    page = alice.page
    page.locator(".attach-input").set_input_files(
        [
            {"name": "cat.png", "mimeType": "image/png", "buffer": media.image("PNG", (400, 200))},
            {"name": HOSTILE, "mimeType": "application/pdf", "buffer": media.PDF},
        ]
    )
    chips = page.locator("#attach-tray .attach-chip")
    expect(chips).to_have_count(2)
    expect(page.locator('#attach-tray .attach-chip[data-state="ready"]')).to_have_count(2)
    page.locator("#composer-input").press("Enter")
    expect(page.locator("#attach-tray")).to_be_hidden()
    expect(alice.conversation(room).locator(".conv-preview")).to_have_text(
        "You: \U0001f4ce 2 files"
    )

    # Bob sees the thumbnail (loaded through an authorized fetch) and the file chip.
    row = bob.page.locator("#rows .row.msg", has=bob.page.locator(".attachments"))
    expect(row).to_have_count(1)
    # A screen reader hears what was sent, not an empty message.
    expect(row).to_have_attribute("aria-label", re.compile(r": Sent 2 files\. "))
    thumb = row.locator(".attach-image img")
    expect(thumb).to_have_attribute("src", re.compile(r"^blob:"))
    bob.page.wait_for_function(
        "() => document.querySelector('.attach-image img')?.naturalWidth === 320"
    )
    chip = row.locator(".file-chip")
    expect(chip.locator(".attach-name")).to_have_text(SHOWN)
    assert row.locator(".file-chip img").count() == 0

    # Clicking the thumbnail opens the full image.
    row.locator(".attach-image").click()
    viewer = bob.page.locator("#image-viewer")
    expect(viewer).to_be_visible()
    bob.page.wait_for_function(
        "() => document.querySelector('#image-viewer .viewer-image')?.naturalWidth === 400"
    )
    viewer.get_by_role("button", name="Close image").click()
    expect(viewer).to_be_hidden()

    # The file downloads under its (safe) name, with its bytes.
    with bob.page.expect_download() as download:
        chip.click()
    assert download.value.suggested_filename == SHOWN
    path = download.value.path()
    assert path.read_bytes() == media.PDF
    assert dialogs == []
