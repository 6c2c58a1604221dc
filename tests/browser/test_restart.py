"""A server restart in the middle of a conversation: clients reconnect and resume."""

from __future__ import annotations

import re
from collections.abc import Callable

from playwright.sync_api import expect

from tests.browser.conftest import PalaverServer
from tests.browser.people import Person

MakePerson = Callable[..., Person]
# Reconnect delays back off up to 30 s; a restart takes a few seconds, so the clients
# are back well within this.
RECONNECT_TIMEOUT_MS = 45_000


def test_server_restart_during_conversation(person: MakePerson, server: PalaverServer) -> None:
    alice = person("alice")
    bob = person("bob")
    alice.open_room_with("ops", bob)
    alice.send("before the restart")
    expect(bob.message("before the restart")).to_be_visible()

    # A marker that a reload would wipe: the pages must survive the restart as they are.
    alice.page.evaluate("() => { window.stillTheSamePage = true; }")
    server.stop()
    for someone in (alice, bob):
        expect(someone.page.locator("#conn")).to_have_attribute(
            "data-state", re.compile("^(reconnecting|connecting)$")
        )
    expect(alice.page.locator("#conn")).to_contain_text("Reconnecting")
    # Written while the server is down: pending until it is back.
    alice.send("while the server was down")
    expect(alice.message("while the server was down")).to_have_attribute("data-status", "pending")

    server.start()
    alice.expect_online(timeout=RECONNECT_TIMEOUT_MS)
    bob.expect_online(timeout=RECONNECT_TIMEOUT_MS)
    expect(bob.message("while the server was down")).to_be_visible()
    expect(alice.message("while the server was down")).to_have_attribute("data-status", "read")

    bob.send("after the restart")
    expect(alice.message("after the restart")).to_be_visible()
    expected = ["before the restart", "while the server was down", "after the restart"]
    for someone in (alice, bob):
        expect(someone.messages()).to_have_count(len(expected))
        someone.expect_texts(expected)
        seqs = someone.seqs()
        assert seqs == sorted(set(seqs))
    assert alice.page.evaluate("() => window.stillTheSamePage") is True
