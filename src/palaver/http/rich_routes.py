"""REST for rich messages: edit, delete, edit history, reactions, pins and threads.

Thin, like every router: the rules live in :mod:`palaver.services.rich`, shared with
the socket."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response
from pydantic import BaseModel, Field

from palaver.core.models import Message
from palaver.http.deps import PrincipalDep, ServicesDep
from palaver.http.message_schemas import MessageOut, ThreadSummaryOut
from palaver.http.schemas import ERROR_RESPONSES, Strict
from palaver.services.container import Services
from palaver.services.rich import render, thread_frame

router = APIRouter(tags=["messages"], responses=ERROR_RESPONSES)

Emoji = Annotated[str, Path(max_length=64, description="an emoji or a :shortcode:")]


class EditIn(Strict):
    content: str = Field(..., description="the new text; validated like a send")


class ThreadReadIn(Strict):
    seq: int = Field(..., ge=0, description="the seq of the last thread reply read")


class ChangeOut(BaseModel):
    changed: bool = Field(description="false when it was already so (idempotent)")
    seq: int | None = Field(None, description="the stream entry's seq when changed")


class EditOut(BaseModel):
    message_id: int
    editor_id: int | None
    content: str = Field(description="the text the message had until edited_at")
    edited_at: int


class ThreadOut(BaseModel):
    root: MessageOut
    messages: list[MessageOut]
    summary: ThreadSummaryOut
    read_seq: int = Field(description="the caller's thread read cursor")
    unread: int = Field(description="replies by others after read_seq")
    has_more: bool


class ThreadReadOut(BaseModel):
    read_seq: int


async def _render(services: Services, found: list[Message]) -> list[MessageOut]:
    senders = await services.store.get_users(
        {m.sender_id for m in found if m.sender_id is not None}
    )
    frames = [render(m, senders.get(m.sender_id) if m.sender_id else None) for m in found]
    await services.rich.decorate(frames, found)
    return [MessageOut.model_validate(frame) for frame in frames]


def _change(entry: Message | None) -> ChangeOut:
    return ChangeOut(changed=entry is not None, seq=entry.seq if entry else None)


@router.patch(
    "/api/messages/{message_id}", response_model=MessageOut, response_model_exclude_unset=True
)
async def edit_message(
    message_id: int, body: EditIn, principal: PrincipalDep, services: ServicesDep
) -> MessageOut:
    """Edit your own message. Members get an ``edit`` entry in the stream."""
    edited = await services.rich.edit(principal.user, message_id, body.content)
    [out] = await _render(services, [edited])
    return out


@router.delete("/api/messages/{message_id}", status_code=204)
async def delete_message(
    message_id: int, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Delete a message (author, conversation owner or admin, server admin): it stays
    as a tombstone (``deleted_at`` set, content empty), its ``edit`` entries in the
    stream are emptied and its edit history is gone."""
    await services.rich.delete(principal.user, message_id)
    return Response(status_code=204)


@router.get("/api/messages/{message_id}/edits", response_model=list[EditOut])
async def edit_history(
    message_id: int, principal: PrincipalDep, services: ServicesDep
) -> list[EditOut]:
    """Earlier texts of a message, oldest first: moderators only (none once deleted)."""
    found = await services.rich.edit_history(principal.user, message_id)
    return [
        EditOut(
            message_id=e.message_id, editor_id=e.editor_id, content=e.content, edited_at=e.edited_at
        )
        for e in found
    ]


@router.put("/api/messages/{message_id}/reactions/{emoji}", response_model=ChangeOut)
async def add_reaction(
    message_id: int, emoji: Emoji, principal: PrincipalDep, services: ServicesDep
) -> ChangeOut:
    """React; adding the same reaction twice is adding it once."""
    return _change(await services.rich.react(principal.user, message_id, emoji, True))


@router.delete("/api/messages/{message_id}/reactions/{emoji}", response_model=ChangeOut)
async def remove_reaction(
    message_id: int, emoji: Emoji, principal: PrincipalDep, services: ServicesDep
) -> ChangeOut:
    """Take your reaction back (nothing happens when there was none)."""
    return _change(await services.rich.react(principal.user, message_id, emoji, False))


@router.put("/api/messages/{message_id}/pin", response_model=ChangeOut)
async def pin_message(message_id: int, principal: PrincipalDep, services: ServicesDep) -> ChangeOut:
    """Pin (rooms: owners and admins; groups and directs: any member)."""
    return _change(await services.rich.pin(principal.user, message_id, True))


@router.delete("/api/messages/{message_id}/pin", response_model=ChangeOut)
async def unpin_message(
    message_id: int, principal: PrincipalDep, services: ServicesDep
) -> ChangeOut:
    return _change(await services.rich.pin(principal.user, message_id, False))


@router.get(
    "/api/conversations/{conversation_id}/pins",
    response_model=list[MessageOut],
    response_model_exclude_unset=True,
)
async def list_pins(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> list[MessageOut]:
    """Pinned messages, most recently pinned first."""
    return await _render(services, await services.rich.pins(principal.user, conversation_id))


@router.get(
    "/api/messages/{message_id}/thread", response_model=ThreadOut, response_model_exclude_unset=True
)
async def thread(
    message_id: int,
    principal: PrincipalDep,
    services: ServicesDep,
    after: Annotated[
        int | None, Query(ge=0, description="the oldest replies after this seq")
    ] = None,
    before: Annotated[
        int | None,
        Query(ge=0, description="alone: the newest replies before this seq (to page back)"),
    ] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ThreadOut:
    """A thread: its root, a page of replies in order, reply count and latest repliers,
    and the caller's own read cursor and unread count of the thread. Without cursors
    the page holds the oldest replies; ``has_more`` says more may follow in the
    direction asked (newer after ``after``, older before ``before``)."""
    view = await services.rich.thread(
        principal.user, message_id, after=after, before=before, limit=limit
    )
    root, *replies = await _render(services, [view.root, *view.replies])
    return ThreadOut(
        root=root,
        messages=replies,
        summary=ThreadSummaryOut(**thread_frame(view.summary)),
        read_seq=view.read_seq,
        unread=view.unread,
        has_more=len(view.replies) == limit,
    )


@router.post("/api/messages/{message_id}/thread/read", response_model=ThreadReadOut)
async def thread_read(
    message_id: int, body: ThreadReadIn, principal: PrincipalDep, services: ServicesDep
) -> ThreadReadOut:
    """Move the caller's read cursor of the thread forward to ``seq``."""
    cursor = await services.rich.mark_thread_read(principal.user, message_id, body.seq)
    return ThreadReadOut(read_seq=cursor)
