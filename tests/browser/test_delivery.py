"""Delivery through network trouble: everything arrives, once, in order."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from playwright.sync_api import WebSocketRoute, expect

from tests.browser.people import Person, exactly

MakePerson = Callable[..., Person]
SETTLED = re.compile(r"^(sent|delivered|read)$")


def _chatting(person: MakePerson) -> tuple[Person, Person]:
    """Alice and Bob, each with their direct conversation open."""
    alice = person("alice")
    bob = person("bob")
    alice.start_direct(bob)
    alice.send("start")
    bob.open(alice.display_name)
    expect(bob.message("start")).to_be_visible()
    expect(alice.message("start")).to_have_attribute("data-status", "read")
    return alice, bob


def test_reader_offline_then_online_gets_everything_once_in_order(person: MakePerson) -> None:
    alice, bob = _chatting(person)

    bob.set_offline(True)
    expect(bob.page.locator("#conn")).to_have_attribute("data-state", "offline")
    burst = [f"burst {n}" for n in range(1, 9)]
    for text in burst:
        alice.send(text)
    # Acknowledged by the server, not delivered: Bob's client really is cut off.
    expect(alice.message(burst[-1])).to_have_attribute("data-status", "sent")

    bob.set_offline(False)
    bob.expect_online()
    expect(bob.messages()).to_have_count(1 + len(burst))
    bob.expect_texts(["start", *burst])
    seqs = bob.seqs()
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
    # Bob has the conversation open: everything turns "read" for Alice.
    expect(alice.message(burst[-1])).to_have_attribute("data-status", "read")

    # A second outage right after the first changes nothing.
    bob.set_offline(True)
    alice.send("after the second outage")
    bob.set_offline(False)
    bob.expect_online()
    expect(bob.message("after the second outage")).to_be_visible()
    expect(bob.messages()).to_have_count(2 + len(burst))
    expect(bob.text_rows().last).to_have_text(exactly("after the second outage"))


def test_message_written_offline_is_sent_after_reconnect(person: MakePerson) -> None:
    alice, bob = _chatting(person)

    alice.set_offline(True)
    expect(alice.page.locator("#conn")).to_have_attribute("data-state", "offline")
    alice.send("written offline")
    alice.send("and another")
    # Shown at once, as pending, in the order written; the list preview says so too.
    expect(alice.message("written offline")).to_have_attribute("data-status", "pending")
    expect(alice.message("and another")).to_have_attribute("data-status", "pending")
    alice.expect_texts(["start", "written offline", "and another"])
    expect(alice.conversation(bob.display_name).locator(".conv-preview")).to_have_text(
        "You: and another"
    )

    alice.set_offline(False)
    alice.expect_online()
    expect(alice.message("written offline")).to_have_attribute("data-status", SETTLED)
    expect(alice.message("and another")).to_have_attribute("data-status", SETTLED)
    expect(bob.message("and another")).to_be_visible()
    bob.expect_texts(["start", "written offline", "and another"])
    # Once each, on both sides, in order.
    expect(alice.messages()).to_have_count(3)
    alice.expect_texts(bob.texts())
    assert alice.seqs() == bob.seqs()
    expect(alice.message("and another")).to_have_attribute("data-status", "read")


def test_lost_ack_is_retried_and_shown_once(person: MakePerson) -> None:
    """The connection dies after the server stored a message but before its ack (and
    the message's echo) reached the client: the client resends it with the same
    client_msg_id after reconnecting, and it shows once."""
    alice, bob = _chatting(person)
    state = {"armed": False, "cut": False, "connections": 0}

    def route(ws: WebSocketRoute) -> None:
        state["connections"] += 1
        server = ws.connect_to_server()

        def from_server(message: str | bytes) -> None:
            text = message if isinstance(message, str) else message.decode()
            doomed = '"type":"ack"' in text or "doomed ack" in text
            if state["armed"] and not state["cut"] and doomed:
                # Swallow the ack (or the echo), then drop the connection.
                state["cut"] = True
                ws.close(code=1011, reason="network hiccup")
                server.close()
                return
            ws.send(message)

        # Handling one direction stops Playwright's automatic forwarding of it only.
        server.on_message(from_server)

    alice.page.route_web_socket(re.compile(r"/ws\?"), route)
    # Reconnect through the route (the open socket predates it).
    alice.page.evaluate("() => window.dispatchEvent(new Event('offline'))")
    alice.page.evaluate("() => window.dispatchEvent(new Event('online'))")
    alice.expect_online()
    assert state["connections"] == 1

    state["armed"] = True
    alice.send("doomed ack")
    expect(alice.message("doomed ack")).to_have_attribute("data-status", SETTLED)
    assert state["cut"], "the ack was never intercepted"
    assert state["connections"] >= 2
    expect(bob.message("doomed ack")).to_be_visible()
    alice.send("next one")
    expect(bob.message("next one")).to_be_visible()
    # Exactly once everywhere, even after a reload that reads the history back.
    expect(alice.messages()).to_have_count(3)
    expect(bob.messages()).to_have_count(3)
    alice.page.reload()
    alice.expect_online()
    expect(alice.messages()).to_have_count(3)
    alice.expect_texts(["start", "doomed ack", "next one"])


def test_refused_message_can_be_retried_or_deleted(person: MakePerson) -> None:
    alice, bob = _chatting(person)
    refuse = {"on": True}

    def route(ws: WebSocketRoute) -> None:
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            frame = json.loads(message)
            if refuse["on"] and frame.get("type") == "send":
                # The server says no for good (as it would to a muted member).
                ws.send(
                    json.dumps(
                        {
                            "type": "error",
                            "code": "FORBIDDEN",
                            "message": "you may not post here",
                            "id": frame["id"],
                        }
                    )
                )
                return
            server.send(message)

        ws.on_message(from_page)

    alice.page.route_web_socket(re.compile(r"/ws\?"), route)
    alice.page.reload()
    alice.expect_online()

    alice.send("try again later")
    failed = alice.message("try again later")
    expect(failed).to_have_attribute("data-status", "failed")
    expect(failed).to_contain_text("Not sent: you may not post here")
    alice.send("never mind")
    expect(alice.message("never mind")).to_have_attribute("data-status", "failed")

    # Deleting drops it; retrying (once the server accepts again) sends it.
    alice.message("never mind").get_by_role("button", name="Delete").click()
    expect(alice.message("never mind")).to_have_count(0)
    refuse["on"] = False
    failed.get_by_role("button", name="Retry").click()
    expect(alice.message("try again later")).to_have_attribute("data-status", SETTLED)
    expect(bob.message("try again later")).to_be_visible()
    expect(bob.message("never mind")).to_have_count(0)
    # Nothing is left in the outbox to be sent after a reload.
    alice.page.reload()
    alice.expect_online()
    # History renders after the reload's fetch: both checks wait for it.
    expect(alice.messages()).to_have_count(2)
    alice.expect_texts(["start", "try again later"])


def test_pending_message_survives_a_reload(person: MakePerson) -> None:
    """The socket cannot connect (HTTP still works): a message written meanwhile stays
    pending across a reload of the tab and is sent once the socket is back."""
    alice, bob = _chatting(person)
    blocked = {"on": True}

    def route(ws: WebSocketRoute) -> None:
        if blocked["on"]:
            ws.close(code=1011, reason="blocked by the test")
        else:
            ws.connect_to_server()  # forwards both ways by itself

    alice.page.route_web_socket(re.compile(r"/ws\?"), route)
    alice.page.reload()
    expect(alice.page.locator("#conn")).to_have_attribute("data-state", "reconnecting")
    alice.open(bob.display_name)
    alice.send("kept across a reload")
    expect(alice.message("kept across a reload")).to_have_attribute("data-status", "pending")

    alice.page.reload()
    expect(alice.page.locator("#conv-title")).to_have_text(bob.display_name)
    expect(alice.message("kept across a reload")).to_have_attribute("data-status", "pending")

    blocked["on"] = False
    alice.page.get_by_role("button", name="Retry now").click()
    alice.expect_online()
    expect(alice.message("kept across a reload")).to_have_attribute("data-status", SETTLED)
    expect(bob.message("kept across a reload")).to_be_visible()
    expect(bob.messages()).to_have_count(2)
    expect(alice.messages()).to_have_count(2)
