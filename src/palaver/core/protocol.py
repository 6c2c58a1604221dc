"""The native WebSocket protocol: client frames parsed into typed commands.

Sans-I/O: takes an already-decoded JSON value, returns a command or raises
:class:`~palaver.core.errors.PalaverError` with the wire error code. Server frames are
built by :mod:`palaver.core.events`. ``docs/protocol.md`` documents every frame.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from palaver.core import moderation_commands, search
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.uploads import MAX_ATTACHMENTS

MAX_ID_LENGTH = 64
#: Messages per page of ``history`` (and ``thread``), as over REST.
HISTORY_LIMIT = 50
MAX_HISTORY_LIMIT = 200


@dataclass(frozen=True, slots=True)
class Command:
    """Base of client commands; ``id`` is echoed in the reply (ack or error)."""

    id: str | int | None


@dataclass(frozen=True, slots=True)
class Ping(Command):
    pass


@dataclass(frozen=True, slots=True)
class Auth(Command):
    token: str


@dataclass(frozen=True, slots=True)
class Send(Command):
    """``conversation_id`` or ``to`` (a user id or username, for direct messages)."""

    conversation_id: int | None
    to: int | str | None
    content: str
    client_msg_id: str | None
    #: Upload ids to attach (the sender's own uploads); the text may then be empty.
    attachments: tuple[int, ...] = ()
    reply_to_id: int | None = None
    thread_root_id: int | None = None


@dataclass(frozen=True, slots=True)
class Resume(Command):
    """Cursors: the last sequence number the client holds, per conversation."""

    cursors: dict[int, int]


@dataclass(frozen=True, slots=True)
class Receipt(Command):
    conversation_id: int
    seq: int
    read: bool  # read cursor (implies delivered) or delivery only


@dataclass(frozen=True, slots=True)
class Typing(Command):
    conversation_id: int
    typing: bool


@dataclass(frozen=True, slots=True)
class SetPresence(Command):
    status: str  # "online" or "away"


@dataclass(frozen=True, slots=True)
class History(Command):
    conversation_id: int
    before: int | None
    after: int | None
    limit: int


@dataclass(frozen=True, slots=True)
class JoinRoom(Command):
    room: int | str  # id or name


@dataclass(frozen=True, slots=True)
class LeaveConversation(Command):
    conversation_id: int


@dataclass(frozen=True, slots=True)
class CreateRoom(Command):
    name: str
    topic: str | None


@dataclass(frozen=True, slots=True)
class ListRooms(Command):
    pass


@dataclass(frozen=True, slots=True)
class OnlineUsers(Command):
    pass


@dataclass(frozen=True, slots=True)
class Search(Command):
    """Full-text search; the query is checked by :mod:`palaver.core.search`."""

    q: object
    conversation_id: int | None
    sender_id: int | None
    after: int | None
    before: int | None
    limit: int
    cursor: object


@dataclass(frozen=True, slots=True)
class Moderate(Command):
    """A moderation, safety or notification-settings frame (see
    :mod:`palaver.core.moderation_commands`)."""

    op: moderation_commands.ModerationOp


def _id(raw: dict[str, Any]) -> str | int | None:
    value = raw.get("id")
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "id must be a string or an integer")
    if isinstance(value, str) and len(value) > MAX_ID_LENGTH:
        raise PalaverError(ErrorCode.INVALID_FORMAT, f"id is longer than {MAX_ID_LENGTH}")
    return value


#: The largest integer a frame may carry: ids, sequence numbers and times all fit a
#: signed 64-bit column, and a larger one would fail in the database (INTERNAL_ERROR).
MAX_INT = 2**62


def _int(raw: dict[str, Any], name: str, *, required: bool = True) -> int | None:
    value = raw.get(name)
    if value is None:
        if required:
            code = (
                ErrorCode.MISSING_RECIPIENT
                if name == "conversation_id"
                else ErrorCode.INVALID_FORMAT
            )
            raise PalaverError(code, f"{name} is required", field=name)
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, f"{name} must be a non-negative integer", field=name
        )
    if value > MAX_INT:
        raise PalaverError(ErrorCode.INVALID_FORMAT, f"{name} is too large", field=name)
    return value


def parse_limit(raw: dict[str, Any], name: str, *, default: int, maximum: int) -> int:
    """A page size from 1 to ``maximum``; ``default`` when absent. Out of range is
    ``INVALID_FORMAT`` rather than clamped, as REST answers 422 for the same value."""
    value = raw.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= maximum:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            f"{name} must be an integer from 1 to {maximum}",
            field=name,
        )
    return value


def _str(raw: dict[str, Any], name: str, *, max_length: int = 256) -> str | None:
    value = raw.get(name)
    if value is None:
        return None
    if not isinstance(value, str):
        raise PalaverError(ErrorCode.INVALID_FORMAT, f"{name} must be a string", field=name)
    if len(value) > max_length:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, f"{name} is longer than {max_length}", field=name
        )
    return value


def check_content(content: object, max_length: int, *, allow_empty: bool = False) -> str:
    """The text of a message, or ``EMPTY_CONTENT``, ``INVALID_FORMAT`` or
    ``CONTENT_TOO_LONG`` (which carries ``max_length``). Every way in uses this.
    ``allow_empty`` (a message with attachments) accepts missing or blank text as ``""``."""
    if allow_empty and (content is None or (isinstance(content, str) and not content.strip())):
        return ""
    if not isinstance(content, str):
        if content is None:
            raise PalaverError(ErrorCode.EMPTY_CONTENT, "content is required", field="content")
        raise PalaverError(ErrorCode.INVALID_FORMAT, "content must be a string", field="content")
    if not content.strip():
        raise PalaverError(ErrorCode.EMPTY_CONTENT, "content is empty", field="content")
    if len(content) > max_length:
        raise PalaverError(
            ErrorCode.CONTENT_TOO_LONG,
            f"content is longer than {max_length} characters",
            field="content",
            details={"max_length": max_length},
        )
    return content


def parse_attachments(value: object) -> tuple[int, ...]:
    """The ``attachments`` of a send: at most :data:`MAX_ATTACHMENTS` upload ids."""
    if value is None:
        return ()
    if (
        not isinstance(value, list)
        or len(value) > MAX_ATTACHMENTS
        or not all(
            isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= MAX_INT for v in value
        )
    ):
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            f"attachments must be a list of at most {MAX_ATTACHMENTS} upload ids",
            field="attachments",
        )
    return tuple(dict.fromkeys(value))


def parse_send(raw: dict[str, Any], cid: str | int | None, max_length: int) -> Send:
    attachments = parse_attachments(raw.get("attachments"))
    content = check_content(raw.get("content"), max_length, allow_empty=bool(attachments))
    to = raw.get("to")
    if to is not None and (isinstance(to, bool) or not isinstance(to, int | str)):
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, "to must be a user id or a username", field="to"
        )
    if to == "":
        to = None
    conversation_id = _int(raw, "conversation_id", required=False)
    if conversation_id is None and to is None:
        raise PalaverError(
            ErrorCode.MISSING_RECIPIENT,
            "conversation_id or to is required",
            field="conversation_id",
        )
    if conversation_id is not None and to is not None:
        # Either could be the one the client meant: refuse rather than guess.
        raise PalaverError(
            ErrorCode.INVALID_FORMAT,
            "give conversation_id or to, not both",
            field="to",
        )
    return Send(
        id=cid,
        conversation_id=conversation_id,
        to=to,
        content=content,
        # An empty id would make every later send with "" a duplicate of the first.
        client_msg_id=_str(raw, "client_msg_id", max_length=MAX_ID_LENGTH) or None,
        attachments=attachments,
        reply_to_id=_int(raw, "reply_to_id", required=False),
        thread_root_id=_int(raw, "thread_root_id", required=False),
    )


def parse_command(raw: Any, *, max_length: int) -> Command:
    """Turn one decoded client frame into a command.

    Raises ``INVALID_FORMAT`` (not an object, bad field), ``MISSING_TYPE``,
    ``UNKNOWN_TYPE``, ``MISSING_RECIPIENT``, ``EMPTY_CONTENT`` or ``CONTENT_TOO_LONG``.
    """
    if not isinstance(raw, dict):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "a frame must be a JSON object")
    kind = raw.get("type")
    if kind is None or kind == "":
        raise PalaverError(ErrorCode.MISSING_TYPE, "the frame has no type", field="type")
    if not isinstance(kind, str):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "type must be a string", field="type")
    cid = _id(raw)
    parser = _PARSERS.get(kind)
    if parser is None:
        raise PalaverError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:40]!r}")
    command: Command = parser(raw, cid, max_length)
    return command


def _parse_resume(raw: dict[str, Any], cid: str | int | None, _: int) -> Resume:
    cursors = raw.get("cursors", {})
    if not isinstance(cursors, dict) or len(cursors) > 10_000:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, "cursors must map conversation ids to sequence numbers"
        )
    parsed: dict[int, int] = {}
    for key, value in cursors.items():
        try:
            conversation = int(key)
        except (TypeError, ValueError):
            raise PalaverError(
                ErrorCode.INVALID_FORMAT, f"cursor key {str(key)[:20]!r} is not an id"
            ) from None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise PalaverError(ErrorCode.INVALID_FORMAT, "cursor values must be integers >= 0")
        parsed[conversation] = value
    return Resume(id=cid, cursors=parsed)


def _parse_receipt(read: bool) -> Any:
    def parse(raw: dict[str, Any], cid: str | int | None, _: int) -> Receipt:
        conversation = _int(raw, "conversation_id")
        seq = _int(raw, "seq")
        assert conversation is not None
        assert seq is not None
        return Receipt(id=cid, conversation_id=conversation, seq=seq, read=read)

    return parse


def _parse_typing(raw: dict[str, Any], cid: str | int | None, _: int) -> Typing:
    conversation = _int(raw, "conversation_id")
    assert conversation is not None
    typing = raw.get("typing", raw.get("is_typing", True))
    if not isinstance(typing, bool):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "typing must be true or false")
    return Typing(id=cid, conversation_id=conversation, typing=typing)


def _parse_presence(raw: dict[str, Any], cid: str | int | None, _: int) -> SetPresence:
    status = raw.get("status")
    if status not in ("online", "away"):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "status must be online or away")
    return SetPresence(id=cid, status=status)


def _parse_history(raw: dict[str, Any], cid: str | int | None, _: int) -> History:
    conversation = _int(raw, "conversation_id")
    assert conversation is not None
    return History(
        id=cid,
        conversation_id=conversation,
        before=_int(raw, "before", required=False),
        after=_int(raw, "after", required=False),
        limit=parse_limit(raw, "limit", default=HISTORY_LIMIT, maximum=MAX_HISTORY_LIMIT),
    )


def _parse_join(raw: dict[str, Any], cid: str | int | None, _: int) -> JoinRoom:
    room = raw.get("conversation_id", raw.get("room"))
    if isinstance(room, bool) or not isinstance(room, int | str) or room == "":
        raise PalaverError(ErrorCode.INVALID_FORMAT, "room (a name or id) is required")
    return JoinRoom(id=cid, room=room)


def _parse_leave(raw: dict[str, Any], cid: str | int | None, _: int) -> LeaveConversation:
    conversation = _int(raw, "conversation_id")
    assert conversation is not None
    return LeaveConversation(id=cid, conversation_id=conversation)


def _parse_create_room(raw: dict[str, Any], cid: str | int | None, _: int) -> CreateRoom:
    name = _str(raw, "name", max_length=64)
    if not name or not name.strip():
        raise PalaverError(ErrorCode.INVALID_FORMAT, "name is required", field="name")
    return CreateRoom(id=cid, name=name.strip(), topic=_str(raw, "topic", max_length=512))


def _parse_auth(raw: dict[str, Any], cid: str | int | None, _: int) -> Auth:
    token = _str(raw, "token", max_length=4096)
    if not token:
        raise PalaverError(ErrorCode.INVALID_FORMAT, "token is required", field="token")
    return Auth(id=cid, token=token)


def _parse_search(raw: dict[str, Any], cid: str | int | None, _: int) -> Search:
    return Search(
        id=cid,
        q=raw.get("q"),
        conversation_id=_int(raw, "conversation_id", required=False),
        sender_id=_int(raw, "sender_id", required=False),
        after=_int(raw, "after", required=False),
        before=_int(raw, "before", required=False),
        limit=parse_limit(raw, "limit", default=search.DEFAULT_LIMIT, maximum=search.MAX_LIMIT),
        cursor=raw.get("cursor"),
    )


_PARSERS: dict[str, Any] = {
    "ping": lambda raw, cid, _: Ping(id=cid),
    "auth": _parse_auth,
    "send": lambda raw, cid, max_length: parse_send(raw, cid, max_length),
    "resume": _parse_resume,
    "read": _parse_receipt(read=True),
    "delivered": _parse_receipt(read=False),
    "typing": _parse_typing,
    "presence": _parse_presence,
    "history": _parse_history,
    "join": _parse_join,
    "leave": _parse_leave,
    "create_room": _parse_create_room,
    "list_rooms": lambda raw, cid, _: ListRooms(id=cid),
    "get_online_users": lambda raw, cid, _: OnlineUsers(id=cid),
    "search": _parse_search,
    **{
        action: (
            lambda raw, cid, _, action=action: Moderate(
                id=cid, op=moderation_commands.parse(action, raw)
            )
        )
        for action in moderation_commands.ACTIONS
    },
}


def register(parsers: dict[str, Any]) -> None:
    """Add the parsers of commands defined in their own modules (:mod:`core.rich`)."""
    _PARSERS.update(parsers)
