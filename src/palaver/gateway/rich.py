"""The ``/ws`` commands of rich messages: edit, delete, react, pin, pins, thread,
thread_read. Each answers with one reply frame; the changes themselves reach every
socket of the conversation (this one included) as stream entries."""

from __future__ import annotations

from typing import Any

from palaver.core import events
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Message
from palaver.core.rich import Delete, Edit, Pin, Pins, React, Thread, ThreadRead
from palaver.gateway.client import Client
from palaver.services.container import Services
from palaver.services.rich import thread_frame


async def _frames(services: Services, found: list[Message]) -> list[dict[str, Any]]:
    senders = await services.store.get_users(
        {m.sender_id for m in found if m.sender_id is not None}
    )
    frames = [events.message(m, senders.get(m.sender_id) if m.sender_id else None) for m in found]
    await services.rich.decorate(frames, found)
    return frames


def _changed(cid: str | int | None, entry: Message | None) -> dict[str, Any]:
    return events.reply(
        cid,
        "result",
        ok=True,
        changed=entry is not None,
        seq=entry.seq if entry else None,
    )


async def execute(services: Services, client: Client, command: Any) -> dict[str, Any] | None:
    """Run one rich-message command for the socket's user."""
    user = client.principal.user
    rich = services.rich
    match command:
        case Edit(message_id=message_id, content=content):
            edited = await rich.edit(user, message_id, content)
            return events.reply(command.id, "result", ok=True, edited_at=edited.edited_at)
        case Delete(message_id=message_id):
            gone = await rich.delete(user, message_id)
            return events.reply(command.id, "result", ok=True, deleted_at=gone.deleted_at)
        case React(message_id=message_id, emoji=emoji, add=add):
            return _changed(command.id, await rich.react(user, message_id, emoji, add))
        case Pin(message_id=message_id, pinned=pinned):
            return _changed(command.id, await rich.pin(user, message_id, pinned))
        case Pins(conversation_id=conversation_id):
            found = await rich.pins(user, conversation_id)
            return events.reply(
                command.id,
                "pins",
                conversation_id=conversation_id,
                messages=await _frames(services, found),
            )
        case Thread(root_id=root_id, after=after, before=before, limit=limit):
            view = await rich.thread(user, root_id, after=after, before=before, limit=limit)
            [root, *replies] = await _frames(services, [view.root, *view.replies])
            return events.reply(
                command.id,
                "thread",
                root=root,
                messages=replies,
                summary=thread_frame(view.summary),
                read_seq=view.read_seq,
                unread=view.unread,
                has_more=len(view.replies) == limit,
            )
        case ThreadRead(root_id=root_id, seq=seq):
            cursor = await rich.mark_thread_read(user, root_id, seq)
            return events.reply(command.id, "result", ok=True, read_seq=cursor)
    raise PalaverError(ErrorCode.UNKNOWN_TYPE, "unsupported command")
