"""The AsyncAPI 3 description of the native WebSocket protocol, served at /asyncapi.json.

Kept beside ``docs/protocol.md``; a test checks that every client frame type the parser
accepts is described here.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from palaver import __version__
from palaver.core.errors import SOCKET_CODES, ErrorCode
from palaver.http import asyncapi_rich, moderation_asyncapi

INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
ID = {"oneOf": [{"type": "string", "maxLength": 64}, {"type": "integer"}]}
SEQ = {"type": "integer", "minimum": 0}
MESSAGE_FIELDS = {
    "conversation_id": INT,
    "seq": SEQ,
    "message_id": INT,
    "sender_id": {"type": ["integer", "null"]},
    "sender": {"type": ["string", "null"]},
    "sender_name": {"type": ["string", "null"]},
    "kind": {"enum": asyncapi_rich.MESSAGE_KINDS},
    "content": STR,
    "created_at": {"type": "integer", "description": "milliseconds since the epoch"},
    "client_msg_id": {"type": ["string", "null"]},
    **asyncapi_rich.RICH_MESSAGE_FIELDS,
}
# An element of a message's ``attachments`` (present only when it has some).
ATTACHMENT = {
    "type": "object",
    "properties": {
        "id": INT,
        "name": STR,
        "type": {**STR, "description": "MIME type detected from the content"},
        "size": INT,
        "width": INT,
        "height": INT,
        "thumbnail": BOOL,
    },
    "required": ["id", "name", "type", "size"],
}
MESSAGE_FIELDS["attachments"] = {"type": "array", "items": ATTACHMENT}
# A conversation as the joined and conversation_updated frames carry it: every field,
# always (null when unset).
CONVERSATION_FIELDS = {
    "id": INT,
    "type": {"enum": ["room", "group", "direct"]},
    "name": {"type": ["string", "null"]},
    "topic": {"type": ["string", "null"]},
    "created_by": {"type": ["integer", "null"]},
    "created_at": INT,
    "last_seq": SEQ,
    "min_seq": SEQ,
    "last_message_at": {"type": ["integer", "null"]},
    "member_count": {**INT, "description": "its members, at the time of the frame"},
}
CONVERSATION = {
    "type": "object",
    "properties": CONVERSATION_FIELDS,
    "required": list(CONVERSATION_FIELDS),
}

# name: (summary, fields, required)
CLIENT_FRAMES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "ping": ("Application heartbeat; answered by pong.", {}, []),
    "auth": ("Renew the socket's access token in band.", {"token": STR}, ["token"]),
    "resume": (
        "Start delivery after the client's cursors (last seq held per conversation).",
        {"cursors": {"type": "object", "additionalProperties": SEQ}},
        [],
    ),
    "send": (
        "Send a message to a conversation, or a direct message with `to`.",
        {
            "conversation_id": INT,
            "to": {"oneOf": [INT, STR], "description": "user id or username"},
            "content": {
                **STR,
                "maxLength": 5000,
                "description": "required, unless attachments are given",
            },
            "client_msg_id": {**STR, "maxLength": 64},
            "attachments": {
                "type": "array",
                "maxItems": 10,
                "items": INT,
                "description": "ids of the sender's own uploads (POST /api/upload)",
            },
            **asyncapi_rich.SEND_FIELDS,
        },
        [],
    ),
    "delivered": (
        "Delivery cursor.",
        {"conversation_id": INT, "seq": SEQ},
        ["conversation_id", "seq"],
    ),
    "read": (
        "Read cursor (implies delivered).",
        {"conversation_id": INT, "seq": SEQ},
        ["conversation_id", "seq"],
    ),
    "typing": ("Typing indicator.", {"conversation_id": INT, "typing": BOOL}, ["conversation_id"]),
    "presence": ("Online or away.", {"status": {"enum": ["online", "away"]}}, ["status"]),
    "history": (
        "A page of history.",
        {
            "conversation_id": INT,
            "before": SEQ,
            "after": SEQ,
            "limit": asyncapi_rich.LIMIT,
        },
        ["conversation_id"],
    ),
    "join": ("Join a public room.", {"room": {"oneOf": [INT, STR]}}, ["room"]),
    "leave": (
        "Leave a room or group; an owner hands ownership on to the longest-standing "
        "admin, else member.",
        {"conversation_id": INT},
        ["conversation_id"],
    ),
    "create_room": ("Create a public room.", {"name": STR, "topic": STR}, ["name"]),
    "list_rooms": ("List public rooms.", {}, []),
    "get_online_users": ("Users you may see who are online.", {}, []),
    **asyncapi_rich.CLIENT_FRAMES,
    "search": (
        "Full-text search over your conversations; answered by search_results.",
        {
            "q": {**STR, "maxLength": 256, "description": "at least one word of 3+ characters"},
            "conversation_id": INT,
            "sender_id": INT,
            "after": {**INT, "description": "created at or after (ms since the epoch)"},
            "before": {**INT, "description": "created before (ms since the epoch)"},
            "limit": {**INT, "minimum": 1, "maximum": 100},
            "cursor": {**STR, "description": "next_cursor of the previous page"},
        },
        ["q"],
    ),
    **moderation_asyncapi.CLIENT_FRAMES,
}

SERVER_FRAMES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "hello": (
        "First frame: the user, limits and conversations with cursors.",
        {
            "user": {"type": "object"},
            "session_id": STR,
            "server_time": INT,
            "token_expires_at": INT,
            "limits": {"type": "object"},
            "conversations": {"type": "array"},
        },
        ["user", "conversations"],
    ),
    "ack": (
        "A send was durably committed.",
        {
            "id": ID,
            "message_id": INT,
            "conversation_id": INT,
            "seq": SEQ,
            "client_msg_id": {"type": ["string", "null"]},
            "created_at": INT,
            "duplicate": BOOL,
        },
        ["message_id", "conversation_id", "seq"],
    ),
    "message": ("A message of a conversation.", MESSAGE_FIELDS, ["conversation_id", "seq"]),
    "receipt": (
        "A member's cursors moved.",
        {
            "conversation_id": INT,
            "user_id": INT,
            "read_seq": SEQ,
            "delivered_seq": SEQ,
        },
        ["conversation_id", "user_id"],
    ),
    "typing": (
        "Someone is typing.",
        {
            "conversation_id": INT,
            "user_id": INT,
            "typing": BOOL,
            "expires_in": {"type": "number"},
        },
        ["conversation_id", "user_id", "typing"],
    ),
    "presence": (
        "Presence of a user.",
        {
            "user_id": INT,
            "status": {"enum": ["online", "away", "offline"]},
            "last_seen_at": {"type": ["integer", "null"]},
        },
        ["user_id", "status"],
    ),
    "joined": (
        "This user joined a conversation.",
        {"conversation": CONVERSATION},
        ["conversation"],
    ),
    "left": ("This user left a conversation.", {"conversation_id": INT}, []),
    "conversation_updated": (
        "A room or group of yours was renamed or its topic changed (PATCH "
        "/api/conversations/{id}); the new conversation object.",
        {"conversation": CONVERSATION},
        ["conversation"],
    ),
    "gap": (
        "History removed by retention.",
        {
            "conversation_id": INT,
            "from_seq": SEQ,
            "to_seq": SEQ,
            "code": {"const": ErrorCode.HISTORY_GAP.value},
        },
        ["conversation_id", "from_seq", "to_seq"],
    ),
    "pong": ("Answer to ping.", {"id": ID, "timestamp": INT}, ["timestamp"]),
    "resumed": (
        "Resume accepted; the backlog follows.",
        {"id": ID, "cursors": {"type": "object"}},
        [],
    ),
    "result": ("Answer to a command.", {"id": ID}, []),
    "history": (
        "A page of history.",
        {"id": ID, "messages": {"type": "array"}, "has_more": BOOL},
        [],
    ),
    "rooms": ("Public rooms.", {"id": ID, "rooms": {"type": "array"}}, []),
    "online_users": ("Users online.", {"id": ID, "users": {"type": "array"}}, []),
    "auth_ok": ("Token renewed.", {"id": ID, "token_expires_at": INT}, []),
    "search_results": (
        "Answer to search: matches newest first, with highlights.",
        {
            "id": ID,
            "results": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        **MESSAGE_FIELDS,
                        "highlights": {
                            "type": "array",
                            "description": "[start, end) code point offsets in content",
                            "items": {"type": "array", "items": INT},
                        },
                        "snippet": {
                            "type": "array",
                            "description": "plain-text segments; render as text",
                            "items": {
                                "type": "object",
                                "properties": {"text": STR, "match": BOOL},
                            },
                        },
                    },
                },
            },
            "next_cursor": {"type": ["string", "null"]},
        },
        ["results"],
    ),
    "error": (
        "A refused frame; the socket stays open.",
        {
            "id": ID,
            "code": {"enum": [code.value for code in SOCKET_CODES]},
            "message": STR,
            "field": STR,
            "retry_after": {"type": "number"},
        },
        ["code", "message"],
    ),
    **asyncapi_rich.SERVER_FRAMES,
    **moderation_asyncapi.SERVER_FRAMES,
}


def _message(name: str, spec: tuple[str, dict[str, Any], list[str]]) -> dict[str, Any]:
    summary, fields, required = spec
    return {
        "name": name,
        "summary": summary,
        "contentType": "application/json",
        "payload": {
            "type": "object",
            "properties": {"type": {"const": name}, "id": ID, **fields},
            "required": ["type", *required],
        },
    }


def document() -> dict[str, Any]:
    """The AsyncAPI 3.0 document."""
    from palaver.compat.asyncapi import channels_and_operations

    client = {f"client.{n}": _message(n, s) for n, s in CLIENT_FRAMES.items()}
    server = {f"server.{n}": _message(n, s) for n, s in SERVER_FRAMES.items()}
    compat_channels, compat_operations = channels_and_operations()
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Palaver real-time protocol",
            "version": __version__,
            "description": "JSON text frames over WebSocket at /ws. See docs/protocol.md.",
        },
        "servers": {
            "palaver": {
                "host": "localhost:8000",
                "protocol": "ws",
                "pathname": "/ws",
                "security": [{"$ref": "#/components/securitySchemes/bearer"}],
            }
        },
        "channels": {
            "ws": {
                "address": "/ws",
                "messages": {**client, **server},
            },
            **compat_channels,
        },
        "operations": {
            "sendToServer": {
                "action": "receive",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": f"#/channels/ws/messages/{k}"} for k in client],
            },
            "receiveFromServer": {
                "action": "send",
                "channel": {"$ref": "#/channels/ws"},
                "messages": [{"$ref": f"#/channels/ws/messages/{k}"} for k in server],
            },
            **compat_operations,
        },
        "components": {
            "securitySchemes": {
                "bearer": {
                    "type": "httpBearerToken",
                    "description": "Authorization: Bearer header or ?token= query",
                }
            }
        },
    }


def asyncapi_router() -> APIRouter:
    router = APIRouter(include_in_schema=False)
    cached = document()

    @router.get("/asyncapi.json")
    async def asyncapi() -> dict[str, Any]:
        return cached

    return router
