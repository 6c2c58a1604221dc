"""The protocol parser, without a server: every frame type and every refusal."""

from __future__ import annotations

import contextlib
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from palaver.core import protocol, rich
from palaver.core.errors import ErrorCode, PalaverError

# Importing rich registers its frames (thread, ...) with the parser, as the server does.
assert rich.RICH_PARSERS


def parse(raw: Any) -> protocol.Command:
    return protocol.parse_command(raw, max_length=10)


def refused(raw: Any) -> PalaverError:
    with pytest.raises(PalaverError) as info:
        parse(raw)
    return info.value


def test_every_frame_type_parses() -> None:
    assert parse({"type": "ping", "id": 1}) == protocol.Ping(id=1)
    assert parse({"type": "auth", "token": "t"}) == protocol.Auth(id=None, token="t")
    assert parse({"type": "send", "conversation_id": 3, "content": "hi"}) == protocol.Send(
        id=None, conversation_id=3, to=None, content="hi", client_msg_id=None
    )
    assert parse({"type": "send", "to": "bob", "content": "hi", "client_msg_id": "x"}).to == "bob"
    assert parse({"type": "resume", "cursors": {"4": 7}}) == protocol.Resume(None, {4: 7})
    assert parse({"type": "read", "conversation_id": 1, "seq": 2}) == protocol.Receipt(
        None, 1, 2, read=True
    )
    assert parse({"type": "delivered", "conversation_id": 1, "seq": 2}).read is False  # type: ignore[attr-defined]
    assert parse({"type": "typing", "conversation_id": 1}).typing is True  # type: ignore[attr-defined]
    assert parse({"type": "typing", "conversation_id": 1, "is_typing": False}).typing is False  # type: ignore[attr-defined]
    assert parse({"type": "presence", "status": "away"}) == protocol.SetPresence(None, "away")
    history = parse({"type": "history", "conversation_id": 1, "limit": 200})
    assert history == protocol.History(None, 1, None, None, 200)
    assert parse({"type": "history", "conversation_id": 1}).limit == 50  # type: ignore[attr-defined]
    assert parse({"type": "join", "room": "general"}) == protocol.JoinRoom(None, "general")
    assert parse({"type": "leave", "conversation_id": 2}) == protocol.LeaveConversation(None, 2)
    assert parse({"type": "create_room", "name": " r "}) == protocol.CreateRoom(None, "r", None)
    assert parse({"type": "list_rooms"}) == protocol.ListRooms(None)
    assert parse({"type": "get_online_users"}) == protocol.OnlineUsers(None)


@pytest.mark.parametrize(
    ("raw", "code", "field"),
    [
        ([], ErrorCode.INVALID_FORMAT, None),
        ({}, ErrorCode.MISSING_TYPE, "type"),
        ({"type": 5}, ErrorCode.INVALID_FORMAT, "type"),
        ({"type": "nope"}, ErrorCode.UNKNOWN_TYPE, None),
        ({"type": "ping", "id": True}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "ping", "id": "x" * 65}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "send", "content": "a"}, ErrorCode.MISSING_RECIPIENT, "conversation_id"),
        (
            {"type": "send", "to": "", "content": "a"},
            ErrorCode.MISSING_RECIPIENT,
            "conversation_id",
        ),
        ({"type": "send", "to": True, "content": "a"}, ErrorCode.INVALID_FORMAT, "to"),
        (
            {"type": "send", "conversation_id": 1, "to": "bob", "content": "a"},
            ErrorCode.INVALID_FORMAT,
            "to",
        ),
        (
            {"type": "send", "conversation_id": 1, "to": 2, "content": "a"},
            ErrorCode.INVALID_FORMAT,
            "to",
        ),
        ({"type": "send", "conversation_id": 1}, ErrorCode.EMPTY_CONTENT, "content"),
        (
            {"type": "send", "conversation_id": 1, "content": " \n"},
            ErrorCode.EMPTY_CONTENT,
            "content",
        ),
        ({"type": "send", "conversation_id": 1, "content": 5}, ErrorCode.INVALID_FORMAT, "content"),
        (
            {"type": "send", "conversation_id": 1, "content": "x" * 11},
            ErrorCode.CONTENT_TOO_LONG,
            "content",
        ),
        (
            {"type": "send", "conversation_id": -1, "content": "a"},
            ErrorCode.INVALID_FORMAT,
            "conversation_id",
        ),
        ({"type": "resume", "cursors": []}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "resume", "cursors": {"a": 1}}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "resume", "cursors": {"1": -1}}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "read", "conversation_id": 1}, ErrorCode.INVALID_FORMAT, "seq"),
        ({"type": "typing", "conversation_id": 1, "typing": "yes"}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "presence", "status": "busy"}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "join"}, ErrorCode.INVALID_FORMAT, None),
        ({"type": "create_room", "name": "  "}, ErrorCode.INVALID_FORMAT, "name"),
        ({"type": "auth"}, ErrorCode.INVALID_FORMAT, "token"),
        ({"type": "history", "conversation_id": 1, "limit": 0}, ErrorCode.INVALID_FORMAT, "limit"),
        (
            {"type": "history", "conversation_id": 1, "limit": 201},
            ErrorCode.INVALID_FORMAT,
            "limit",
        ),
        (
            {"type": "history", "conversation_id": 1, "limit": "9"},
            ErrorCode.INVALID_FORMAT,
            "limit",
        ),
        ({"type": "thread", "root_id": 1, "limit": 0}, ErrorCode.INVALID_FORMAT, "limit"),
        ({"type": "thread", "root_id": 1, "limit": 500}, ErrorCode.INVALID_FORMAT, "limit"),
        ({"type": "search", "q": "hello", "limit": 0}, ErrorCode.INVALID_FORMAT, "limit"),
        ({"type": "search", "q": "hello", "limit": 101}, ErrorCode.INVALID_FORMAT, "limit"),
    ],
)
def test_refusals_have_stable_codes(raw: Any, code: ErrorCode, field: str | None) -> None:
    error = refused(raw)
    assert error.code is code
    assert error.field == field
    assert error.message


def test_a_send_names_its_recipient_once() -> None:
    # An empty "to" is no recipient, as it is when alone.
    send = parse({"type": "send", "conversation_id": 3, "to": "", "content": "hi"})
    assert send == protocol.Send(
        id=None, conversation_id=3, to=None, content="hi", client_msg_id=None
    )
    error = refused({"type": "send", "conversation_id": 3, "to": "bob", "content": "hi"})
    assert "not both" in error.message


def test_an_empty_client_msg_id_is_no_id() -> None:
    send = parse({"type": "send", "conversation_id": 3, "content": "hi", "client_msg_id": ""})
    assert send.client_msg_id is None  # type: ignore[attr-defined]
    send = parse({"type": "send", "conversation_id": 3, "content": "hi", "client_msg_id": " "})
    assert send.client_msg_id == " "  # type: ignore[attr-defined]


def test_page_sizes_default_when_absent_and_are_kept_in_range() -> None:
    assert parse({"type": "thread", "root_id": 1}).limit == 50  # type: ignore[attr-defined]
    assert parse({"type": "thread", "root_id": 1, "limit": 200}).limit == 200  # type: ignore[attr-defined]
    assert parse({"type": "search", "q": "hello"}).limit == 20  # type: ignore[attr-defined]
    assert parse({"type": "search", "q": "hello", "limit": 100}).limit == 100  # type: ignore[attr-defined]
    error = refused({"type": "history", "conversation_id": 1, "limit": 500})
    assert error.message == "limit must be an integer from 1 to 200"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "conversation_id must be a non-negative integer"),
        ("7", "conversation_id must be a non-negative integer"),
        (2**70, "conversation_id is too large"),
    ],
)
@pytest.mark.parametrize("frame", [{"type": "leave"}, {"type": "kick", "user_id": 1}])
def test_integer_fields_say_what_they_take(
    value: object, message: str, frame: dict[str, Any]
) -> None:
    error = refused({**frame, "conversation_id": value})
    assert (error.code, error.field, error.message) == (
        ErrorCode.INVALID_FORMAT,
        "conversation_id",
        message,
    )


def test_too_long_says_the_limit() -> None:
    error = refused({"type": "send", "conversation_id": 1, "content": "x" * 11})
    assert error.to_dict()["max_length"] == 10


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_any_json_value_parses_or_is_refused_with_a_code(raw: Any) -> None:
    # Nothing but a PalaverError (which becomes an error frame) may escape the parser.
    with contextlib.suppress(PalaverError):
        assert isinstance(parse(raw), protocol.Command)
