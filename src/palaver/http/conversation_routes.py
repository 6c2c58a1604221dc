"""``/api/conversations``, ``/api/rooms`` and ``/api/messages``: the REST side of chat.

Each route parses, calls a service and renders; every rule lives in the services, so the
socket and REST behave the same.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Response
from pydantic import BaseModel, Field, field_validator

from palaver.core import events
from palaver.core.errors import ErrorCode, PalaverError, not_found
from palaver.core.models import ConversationKind, Message, User
from palaver.core.moderation import member_state
from palaver.core.privacy import sender_address
from palaver.core.protocol import parse_attachments
from palaver.core.uploads import MAX_ATTACHMENTS
from palaver.http.deps import PrincipalDep, ServicesDep
from palaver.http.message_schemas import MessageOut
from palaver.http.schemas import ERROR_RESPONSES, Strict
from palaver.services.container import Services

router = APIRouter(tags=["conversations"], responses=ERROR_RESPONSES)


class CreateConversationIn(Strict):
    type: Literal["room", "group", "direct"] | None = Field(
        None, description="required, except for a direct chat named by a user field"
    )
    name: str | None = Field(None, max_length=64)
    topic: str | None = Field(None, max_length=512)
    members: list[int | str] = Field(default_factory=list, max_length=1000)
    user_id: int | str | None = Field(
        None, description="the other user of a direct chat (refused with any other type)"
    )
    # The spellings of seed clients that create-or-get a direct chat with no "type".
    userId: int | str | None = Field(None, description="alias of user_id")
    participantId: int | str | None = Field(None, description="alias of user_id")

    @property
    def other_user(self) -> int | str | None:
        """The user named by any of the three spellings; ``VALIDATION_ERROR`` when they
        name different users, as picking one would silently ignore the others."""
        refs = [ref for ref in (self.user_id, self.userId, self.participantId) if ref is not None]
        if len({str(ref) for ref in refs}) > 1:
            raise PalaverError(
                ErrorCode.VALIDATION_ERROR,
                "user_id, userId and participantId name one user: give one of them",
                field="user_id",
            )
        return refs[0] if refs else None


class SendIn(Strict):
    content: str = Field(
        "", description="the text; at most the configured length; may be empty with attachments"
    )
    client_msg_id: str | None = Field(
        None,
        max_length=64,
        description="idempotency key: a retry with the same key answers the original "
        'message; "" is no key',
    )
    attachments: list[int] = Field(
        default_factory=list,
        max_length=MAX_ATTACHMENTS,
        description="ids of the sender's own uploads (POST /api/upload) to attach",
    )
    reply_to_id: int | None = Field(None, ge=0, description="the message this answers")
    thread_root_id: int | None = Field(
        None, ge=0, description="post in the thread of this message (a reply joins its root)"
    )

    @field_validator("attachments", mode="before")
    @classmethod
    def _attachments(cls, value: object) -> list[int]:
        # A send's attachments are refused as on the socket (INVALID_FORMAT, field
        # attachments), not with the 422 of other fields: a client handles one code for
        # both ways of sending, and a negative id is a bad request, not a missing upload.
        return list(parse_attachments(value))


class UpdateConversationIn(Strict):
    name: str | None = Field(
        None, min_length=1, max_length=64, description="the new name (unchanged when absent)"
    )
    topic: str | None = Field(
        None, max_length=512, description="the new topic; null or empty clears it; absent keeps it"
    )


class ConversationOut(BaseModel):
    id: int
    type: str = Field(description="room, group or direct")
    name: str | None
    topic: str | None
    created_by: int | None
    created_at: int
    last_seq: int
    min_seq: int
    last_message_at: int | None
    member_count: int | None


class AddMemberIn(Strict):
    user_id: int | str


class CursorIn(Strict):
    seq: int = Field(..., ge=0)


class HistoryOut(BaseModel):
    conversation_id: int
    messages: list[MessageOut]
    has_more: bool
    gap: dict[str, int] | None = Field(
        None, description="present only when retention removed part of the range"
    )


async def _senders(services: Services, found: list[Message]) -> dict[int, User]:
    ids = {m.sender_id for m in found if m.sender_id is not None}
    return await services.store.get_users(ids) if ids else {}


async def _render(
    services: Services,
    found: list[Message],
    senders: dict[int, User] | None = None,
    viewer_id: int | None = None,
) -> list[dict[str, Any]]:
    if senders is None:
        senders = await _senders(services, found)
    # REST resources carry their own id as "id", as REST clients expect.
    frames = [
        {"id": m.id, **events.message(m, senders.get(m.sender_id) if m.sender_id else None)}
        for m in found
    ]
    await services.rich.decorate(frames, found, viewer_id)
    return frames


@router.get("/api/conversations")
async def list_conversations(principal: PrincipalDep, services: ServicesDep) -> list[Any]:
    """The caller's conversations, latest activity first, with unread counts computed
    by the server from the read cursor and the last message."""
    summaries = await services.conversations.list_for(principal.user.id)
    last = [s.last_message for s in summaries if s.last_message is not None]
    senders = await _senders(services, last)
    out = []
    for s in summaries:
        sender_id = s.last_message.sender_id if s.last_message else None
        item = events.summary(s, senders.get(sender_id) if sender_id else None)
        out.append(item)
    await _name_directs(services, principal.user.id, out)
    return out


async def _name_directs(services: Services, me: int, items: list[dict[str, Any]]) -> None:
    """Give direct conversations the other person's name and id."""
    for item in items:
        if item["type"] != ConversationKind.DIRECT.value:
            continue
        members = await services.store.member_ids(item["id"])
        other = next((uid for uid in members if uid != me), None)
        user = await services.users.get(other) if other is not None else None
        item["peer"] = (
            {"id": user.id, "username": user.username, "display_name": user.handle}
            if user
            else None
        )
        item["name"] = user.handle if user else "Deleted user"


@router.post("/api/conversations", status_code=201)
async def create_conversation(
    body: CreateConversationIn, response: Response, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """Create a room or group, or create-or-return the direct conversation with
    ``user_id`` (200 when it already existed). Without ``type``, a body naming a user
    (``user_id``, ``userId`` or ``participantId``) means a direct chat. A group is not
    created (FORBIDDEN, ``user_ids``) when it would take in anyone the caller could
    not open a direct conversation with."""
    service = services.conversations
    other = body.other_user
    kind = body.type or ("direct" if other is not None else None)
    if kind is None:
        raise PalaverError(ErrorCode.VALIDATION_ERROR, "type is required", field="type")
    if kind != "direct" and other is not None:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            f"user_id names the other person of a direct conversation; a {kind} takes members",
            field="user_id",
        )
    if kind == "direct":
        if other is None:
            raise PalaverError(ErrorCode.MISSING_RECIPIENT, "user_id is required", field="user_id")
        conversation, created = await service.direct(principal.user, other)
        if not created:
            response.status_code = 200
    elif not body.name:
        raise PalaverError(ErrorCode.VALIDATION_ERROR, "name is required", field="name")
    elif kind == "room":
        conversation = await service.create_room(principal.user, body.name, body.topic)
    else:
        conversation = await service.create_group(
            principal.user, body.name, body.members, body.topic
        )
    count = await services.store.count_members(conversation.id)
    item = events.conversation(conversation, count)
    await _name_directs(services, principal.user.id, [item])
    return item


@router.get("/api/conversations/{conversation_id}")
async def get_conversation(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    conversation, member = await services.conversations.get(principal.user.id, conversation_id)
    count = await services.store.count_members(conversation_id)
    item = events.conversation(conversation, count)
    item.update(role=member.role.value, read_seq=member.read_seq)
    await _name_directs(services, principal.user.id, [item])
    return item


@router.patch("/api/conversations/{conversation_id}", response_model=ConversationOut)
async def update_conversation(
    conversation_id: int,
    body: UpdateConversationIn,
    principal: PrincipalDep,
    services: ServicesDep,
) -> ConversationOut:
    """Rename a room or group, or set its topic: owners and admins (other members get
    FORBIDDEN; a room name already taken, CONFLICT). Members see a system message and a
    ``conversation_updated`` frame on their sockets."""
    conversation = await services.conversations.update(
        principal.user,
        conversation_id,
        name=body.name,
        topic=body.topic,
        set_topic="topic" in body.model_fields_set,
    )
    count = await services.store.count_members(conversation_id)
    return ConversationOut.model_validate(events.conversation(conversation, count))


@router.get("/api/conversations/{conversation_id}/members")
async def list_members(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> list[dict[str, Any]]:
    members = await services.conversations.members(principal.user.id, conversation_id)
    users = await services.store.get_users(m.user_id for m in members)
    presence = await services.broker.get_presence(m.user_id for m in members)
    for blocker in services.moderation.state.blocked_by.get(principal.user.id, ()):
        presence.pop(blocker, None)
    return [
        {
            "user_id": m.user_id,
            "username": users[m.user_id].username if m.user_id in users else None,
            "display_name": users[m.user_id].handle if m.user_id in users else None,
            "role": m.role.value,
            "joined_at": m.joined_at,
            "read_seq": m.read_seq,
            "delivered_seq": m.delivered_seq,
            "presence": presence.get(m.user_id, "offline"),
            **member_state(m),
        }
        for m in members
    ]


@router.post("/api/conversations/{conversation_id}/members", status_code=201)
async def add_member(
    conversation_id: int, body: AddMemberIn, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """Add someone to a group (owners and admins) or a room (any member). FORBIDDEN,
    naming them in ``user_ids``, when the caller could not open a direct conversation
    with them (a block either way, or their ``contacts`` policy)."""
    member = await services.conversations.add_member(principal.user, conversation_id, body.user_id)
    return {"user_id": member.user_id, "role": member.role.value}


@router.delete("/api/conversations/{conversation_id}/members/{user_id}", status_code=204)
async def remove_member(
    conversation_id: int, user_id: int, principal: PrincipalDep, services: ServicesDep
) -> Response:
    await services.conversations.remove_member(principal.user, conversation_id, user_id)
    return Response(status_code=204)


@router.post("/api/conversations/{conversation_id}/join")
async def join(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> dict[str, Any]:
    """Join a public room."""
    room, joined = await services.conversations.join_room(principal.user, conversation_id)
    count = await services.store.count_members(room.id)
    return {"conversation": events.conversation(room, count), "joined": joined}


@router.post("/api/conversations/{conversation_id}/leave", status_code=204)
async def leave(conversation_id: int, principal: PrincipalDep, services: ServicesDep) -> Response:
    """Leave a room or group. An owner hands ownership on to the longest-standing admin,
    else the longest-standing member; the members get ``member_updated``."""
    await services.conversations.leave(principal.user, conversation_id)
    return Response(status_code=204)


# Unset optional fields are left out, as in socket frames (docs/protocol.md: "present
# only when set"), rather than sent as null.
@router.get(
    "/api/conversations/{conversation_id}/messages",
    response_model=HistoryOut,
    response_model_exclude_unset=True,
)
async def history(
    conversation_id: int,
    principal: PrincipalDep,
    services: ServicesDep,
    before: Annotated[int | None, Query(ge=0, description="older than this seq")] = None,
    after: Annotated[int | None, Query(ge=0, description="newer than this seq")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> HistoryOut:
    """Messages oldest first, paged by sequence number: ``after`` pages forward from a
    cursor (as a resume does), ``before`` (or neither) pages back from the newest."""
    page = await services.messaging.history(
        principal.user.id, conversation_id, before=before, after=after, limit=limit
    )
    out = HistoryOut(
        conversation_id=conversation_id,
        messages=await _render(services, page.messages, viewer_id=principal.user.id),
        has_more=len(page.messages) == limit,
    )
    if page.gap:
        out.gap = {"from_seq": page.gap[0], "to_seq": page.gap[1]}
    return out


@router.post("/api/conversations/{conversation_id}/messages", status_code=201)
async def send(
    conversation_id: int,
    body: SendIn,
    response: Response,
    principal: PrincipalDep,
    services: ServicesDep,
) -> dict[str, Any]:
    """Send a message; answered once it is durably stored. A repeated
    ``client_msg_id`` answers 200 with the original message instead of a second one."""
    attachments: list[dict[str, Any]] = []
    if body.attachments:
        # Membership first: an outsider must not bind uploads to the conversation.
        await services.messaging.require_member(conversation_id, principal.user.id)
        attachments = await services.uploads.attach(
            principal.user.id, conversation_id, body.attachments
        )
    appended = await services.messaging.send(
        principal.user,
        conversation_id,
        body.content,
        client_msg_id=body.client_msg_id,
        member_checked=bool(body.attachments),
        attachments=tuple(attachments),
        reply_to_id=body.reply_to_id,
        thread_root_id=body.thread_root_id,
    )
    if appended.duplicate:
        response.status_code = 200
    return {
        "id": appended.message.id,
        **events.message(appended.message, principal.user),
        "duplicate": appended.duplicate,
    }


@router.post("/api/conversations/{conversation_id}/read", status_code=204)
async def mark_read(
    conversation_id: int, body: CursorIn, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Move the caller's read cursor forward to ``seq``."""
    await services.messaging.mark(principal.user.id, conversation_id, body.seq, read=True)
    return Response(status_code=204)


@router.get("/api/rooms")
async def list_rooms(
    principal: PrincipalDep,
    services: ServicesDep,
    query: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 100,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[dict[str, Any]]:
    """Public rooms with member counts, by name."""
    rooms = await services.store.list_rooms(query=query, limit=limit, offset=offset)
    return [events.conversation(room, count) for room, count in rooms]


@router.get("/api/messages/{room}")
async def room_messages(
    room: str,
    principal: PrincipalDep,
    services: ServicesDep,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> list[dict[str, Any]]:
    """The latest messages of a room by name, oldest first, in the shape
    ``{id, room, senderEmail, content, createdAt}`` plus Palaver's own fields."""
    found = await services.store.get_room_by_name(room)
    if found is None:
        raise not_found("room")
    page = await services.messaging.history(principal.user.id, found.id, limit=limit)
    senders = await _senders(services, page.messages)
    out = []
    rendered_all = await _render(services, page.messages, senders)
    for message, rendered in zip(page.messages, rendered_all, strict=True):
        sender = senders.get(message.sender_id) if message.sender_id else None
        out.append(
            {
                **rendered,
                "room": found.name,
                "senderEmail": sender_address(
                    sender, principal.user.id, expose_emails=services.settings.expose_emails
                ),
                "createdAt": datetime.fromtimestamp(message.created_at / 1000, UTC)
                .isoformat(timespec="milliseconds")
                .replace("+00:00", "Z"),
            }
        )
    return out
