"""A person using the web client: the steps tests take, written once."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from playwright.sync_api import Locator, Page, expect

PASSWORD = "Correct-Horse-9"


def exactly(text: str) -> re.Pattern[str]:
    """A pattern matching ``text`` whole and as written. Playwright collapses the
    whitespace of a plain string it compares, a pattern it leaves alone."""
    return re.compile(f"^{re.escape(text)}$")


@dataclass
class Person:
    page: Page
    username: str
    display_name: str
    password: str = PASSWORD

    # -- account ---------------------------------------------------------------------

    def register(self) -> None:
        page = self.page
        page.locator("#auth").wait_for(state="visible")
        page.get_by_role("tab", name="Create account").click()
        form = page.locator("#register-form")
        form.locator('input[name="username"]').fill(self.username)
        form.locator('input[name="display_name"]').fill(self.display_name)
        form.locator('input[name="password"]').fill(self.password)
        form.get_by_role("button", name="Create account").click()
        self.expect_online()

    def expect_online(self, timeout: float = 15_000) -> None:
        expect(self.page.locator("#chat")).to_be_visible(timeout=timeout)
        expect(self.page.locator("#conn")).to_have_attribute(
            "data-state", "online", timeout=timeout
        )

    def set_offline(self, offline: bool) -> None:
        self.page.context.set_offline(offline)

    # -- conversation list -----------------------------------------------------------

    def conversation(self, title: str) -> Locator:
        """The list entry of a conversation, by its exact title."""
        name = self.page.locator(".conv-name", has_text=exactly(title))
        return self.page.locator("#conv-list li.conv-item", has=name)

    def unread_badge(self, title: str) -> Locator:
        return self.conversation(title).locator(".badge.unread")

    def open(self, title: str) -> None:
        self.conversation(title).locator("button").click()
        expect(self.page.locator("#conv-title")).to_have_text(title)

    def create_room(self, name: str, topic: str = "") -> None:
        page = self.page
        page.get_by_role("button", name="Browse rooms").click()
        dialog = page.locator("#rooms-dialog")
        dialog.locator('input[name="name"]').fill(name)
        if topic:
            dialog.locator('input[name="topic"]').fill(topic)
        dialog.get_by_role("button", name="Create room").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#conv-title")).to_have_text(name)

    def open_room_with(self, prefix: str, *others: Person) -> str:
        """Create a room of this person's (named ``prefix`` and the end of their user
        name, so every test has its own) that ``others`` join; its name."""
        room = f"{prefix}-{self.username[-6:]}"
        self.create_room(room)
        for other in others:
            other.join_room(room)
        return room

    def join_room(self, name: str) -> None:
        page = self.page
        page.get_by_role("button", name="Browse rooms").click()
        dialog = page.locator("#rooms-dialog")
        dialog.get_by_role("button", name=f"Join {name}").click()
        expect(dialog).to_be_hidden()
        expect(page.locator("#conv-title")).to_have_text(name)

    def start_direct(self, other: Person) -> None:
        page = self.page
        page.locator("#search").fill(other.username)
        page.locator("#people-list").get_by_role(
            "button", name=f"Message {other.display_name}"
        ).click()
        expect(page.locator("#conv-title")).to_have_text(other.display_name)

    # -- messages --------------------------------------------------------------------

    def send(self, text: str) -> None:
        box = self.page.locator("#composer-input")
        box.fill(text)
        box.press("Enter")
        expect(box).to_have_value("")

    def messages(self) -> Locator:
        """Message bubbles of the open conversation (system notices excluded)."""
        return self.page.locator("#rows .row.msg")

    def message(self, text: str) -> Locator:
        return self.page.locator(
            "#rows .row.msg", has=self.page.locator(".text", has_text=exactly(text))
        )

    def delete(self, text: str) -> None:
        """Delete one's own message through its toolbar and the confirmation."""
        row = self.message(text)
        row.hover()
        row.get_by_role("button", name="Delete").click()
        dialog = self.page.get_by_role("dialog", name="Delete message?")
        dialog.get_by_role("button", name="Delete").click()
        expect(dialog).to_be_hidden()

    def text_rows(self) -> Locator:
        """The texts of the open conversation's message bubbles, oldest first."""
        return self.page.locator("#rows .row.msg .text")

    def texts(self) -> list[str]:
        """The texts shown now. Only for a page that has settled: to check what a step
        led to, use :meth:`expect_texts`."""
        return self.text_rows().all_text_contents()

    def expect_texts(self, expected: Sequence[str]) -> None:
        """Wait until the open conversation shows exactly ``expected``, in order: rows
        arrive, fill gaps and render a frame after the step that caused them."""
        expect(self.text_rows()).to_have_text([exactly(text) for text in expected])

    def seqs(self) -> list[int]:
        values = self.page.locator("#rows .row.msg").evaluate_all(
            "rows => rows.map(row => row.dataset.seq)"
        )
        return [int(value) for value in values if value]

    def status(self, text: str) -> Locator:
        return self.message(text)
