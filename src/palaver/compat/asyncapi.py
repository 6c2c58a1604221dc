"""The seed dialects in the AsyncAPI document: one channel per endpoint, one message per
frame or event (docs/compat.md has the examples and the differences)."""

from __future__ import annotations

from typing import Any

from palaver.compat import chat_service, monarchs, mrezhen
from palaver.compat.sio import MOUNT_PATH

# channel -> (address, description, client frames, server frames); a frame is
# name -> (summary, fields). Raw frames carry "type": name; Socket.IO events are named.
DIALECTS: dict[
    str, tuple[str, str, dict[str, tuple[str, list[str]]], dict[str, tuple[str, list[str]]]]
] = {
    "monarchs": (
        monarchs.PATH,
        "Monarchs (seed 000): log in over the socket, one room at a time.",
        {
            "register": ("Create an account.", ["username", "password"]),
            "login": ("Log the socket in.", ["username", "password"]),
            "create_room": ("Create a room and enter it.", ["room_name"]),
            "join_room": ("Enter a room.", ["room_name"]),
            "leave": ("Leave the current room.", []),
            "message": ("Send to the current room.", ["content"]),
            "private": ("Send a private message.", ["to_user", "content"]),
            "get_rooms": ("List rooms.", []),
            "get_users": ("List online users.", []),
        },
        {
            "success": ("A command succeeded (login adds token, expiresIn).", ["content"]),
            "error": ("A command failed.", ["content", "code"]),
            "message": ("A message of the current room.", ["room", "from", "content", "timestamp"]),
            "system": ("A notice of the current room.", ["room", "content"]),
            "private": ("A private message.", ["from", "content", "timestamp"]),
            "rooms": ("Rooms and member counts.", ["rooms"]),
            "users": ("Online users.", ["users"]),
        },
    ),
    "chat-service": (
        chat_service.PATH,
        "Chat Service (seed 001): ?token=…&roomId=…; an invalid token closes with 1008.",
        {
            "message": ("Send to a joined room.", ["roomId", "content"]),
            "join_room": ("Join a room (created if new).", ["roomId"]),
            "leave_room": ("Leave a room.", ["roomId"]),
            "typing": ("Typing indicator.", ["roomId", "isTyping"]),
        },
        {
            "message": (
                "A message of a joined room.",
                ["messageId", "userId", "username", "roomId", "content", "timestamp"],
            ),
            "presence": ("Someone came online or went offline.", ["userId", "status"]),
            "room_joined": ("Answer to a join.", ["roomId", "memberCount"]),
            "room_left": ("Answer to a leave.", ["roomId"]),
            "typing_indicator": ("Someone types.", ["userId", "roomId", "isTyping"]),
            "error": ("A refused frame.", ["code", "message"]),
        },
    ),
    "mrezhen": (
        mrezhen.PATH,
        "Mrezhen (seed 004): direct messages; token checked on the upgrade (401).",
        {
            "direct_message": ("Send a direct message.", ["to", "content"]),
            "get_history": ("History with someone.", ["with", "limit"]),
            "get_online_users": ("Who is online.", []),
            "ping": ("Keep-alive.", []),
        },
        {
            "direct_message": (
                "An incoming message (queued: true if it waited).",
                ["message", "queued"],
            ),
            "message_ack": (
                "Stored; delivered or queued.",
                ["messageId", "to", "timestamp", "status"],
            ),
            "presence": (
                "Someone came online or went offline.",
                ["userId", "status", "onlineUsers"],
            ),
            "online_users": ("Online user ids.", ["users"]),
            "message_history": ("History.", ["with", "messages"]),
            "pong": ("Keep-alive answer.", ["timestamp"]),
            "error": ("One of the ten codes.", ["code", "message"]),
        },
    ),
    "socket.io": (
        MOUNT_PATH + "/",
        "Socket.IO: the Distributed chat (seed 002) and Scalable chat (seed 003) events.",
        {
            "join_room": ("Seed 002: enter a room.", ["room"]),
            "send_message": ("Seed 002: send to a room.", ["room", "content"]),
            "conversation:join": ("Seed 003: open a conversation.", ["conversationId"]),
            "message:send": (
                "Seed 003: send; an image or file by fileUrl (the url POST /api/upload "
                "returned) or uploadId.",
                ["conversationId", "content", "tempId", "messageType", "fileUrl", "uploadId"],
            ),
            "message:read": ("Seed 003: read up to a message.", ["messageId"]),
            "message:delivered": ("Seed 003: received up to a message.", ["messageId"]),
            "typing:start": ("Seed 003: typing.", ["conversationId"]),
            "typing:stop": ("Seed 003: stopped typing.", ["conversationId"]),
        },
        {
            "message": ("Seed 002.", ["id", "room", "senderEmail", "content", "createdAt"]),
            "system": ("Seed 002: joins and leaves.", ["message"]),
            "message:new": (
                "Seed 003.",
                [
                    "id",
                    "conversation_id",
                    "sender_id",
                    "content",
                    "message_type",
                    "file_url",
                    "attachments",
                    "created_at",
                    "seq",
                ],
            ),
            "message:read": ("Seed 003.", ["conversationId", "userId", "messageId", "seq"]),
            "message:delivered": ("Seed 003.", ["conversationId", "userId", "messageId", "seq"]),
            "typing:start": ("Seed 003.", ["conversationId", "userId"]),
            "typing:stop": ("Seed 003.", ["conversationId", "userId"]),
            "user:online": ("Seed 003.", ["userId"]),
            "user:offline": ("Seed 003.", ["userId", "lastSeen"]),
            "error": ("A refused event (also the acknowledgement).", ["code", "message"]),
        },
    ),
}


def _message(name: str, summary: str, fields: list[str], raw: bool) -> dict[str, Any]:
    properties: dict[str, Any] = {field: {} for field in fields}
    if raw:
        properties = {"type": {"const": name}, **properties}
    return {
        "name": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": {"type": "object", "properties": properties},
    }


def channels_and_operations() -> tuple[dict[str, Any], dict[str, Any]]:
    """AsyncAPI ``channels`` and ``operations`` entries for every dialect."""
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    for key, (address, description, client, server) in DIALECTS.items():
        raw = key != "socket.io"
        messages = {
            **{f"client.{n}": _message(n, s, f, raw) for n, (s, f) in client.items()},
            **{f"server.{n}": _message(n, s, f, raw) for n, (s, f) in server.items()},
        }
        channel = f"compat.{key}"
        channels[channel] = {"address": address, "description": description, "messages": messages}
        ref = f"#/channels/{channel}/messages/"
        operations[f"{channel}.send"] = {
            "action": "receive",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": ref + f"client.{n}"} for n in client],
        }
        operations[f"{channel}.receive"] = {
            "action": "send",
            "channel": {"$ref": f"#/channels/{channel}"},
            "messages": [{"$ref": ref + f"server.{n}"} for n in server],
        }
    return channels, operations
