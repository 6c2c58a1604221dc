"""AsyncAPI descriptions of the rich-message frames (merged into the main document)."""

from __future__ import annotations

from typing import Any

INT = {"type": "integer"}
STR = {"type": "string"}
BOOL = {"type": "boolean"}
ID = {"oneOf": [{"type": "string", "maxLength": 64}, {"type": "integer"}]}
SEQ = {"type": "integer", "minimum": 0}
NULLABLE_INT = {"type": ["integer", "null"]}
#: A page size of history and threads (default 50).
LIMIT = {"type": "integer", "minimum": 1, "maximum": 200}

MESSAGE_KINDS = ["text", "system", "edit", "delete", "react", "unreact", "pin", "unpin"]

#: Optional fields of the message frame, present only when set.
RICH_MESSAGE_FIELDS: dict[str, Any] = {
    "ref_id": {
        **INT,
        "description": "the message an edit/delete/react/unreact/pin/unpin entry applies to",
    },
    "reply_to_id": INT,
    "thread_root_id": INT,
    "edited_at": INT,
    "deleted_at": {**INT, "description": "a tombstone: content is empty"},
    "attachments": {"type": "array", "items": {"type": "object"}},
    "mentions": {"type": "array", "items": STR, "description": "lower-cased usernames, @room"},
    "reactions": {
        "type": "array",
        "description": "history, pins and threads only: the state when read",
        "items": {
            "type": "object",
            "properties": {"emoji": STR, "count": INT, "user_ids": {"type": "array"}},
        },
    },
    "thread": {
        "type": "object",
        "description": "history only, on thread roots: reply_count, last_reply_at, "
        "last_reply_seq, repliers (latest first), and the reader's read_seq and unread",
    },
    "pinned": BOOL,
}

CLIENT_FRAMES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "edit": (
        "Replace the text of your own message.",
        {"message_id": INT, "content": {**STR, "maxLength": 5000}},
        ["message_id", "content"],
    ),
    "delete": (
        "Delete a message (author, conversation owner/admin, server admin); its edit "
        "entries are emptied too.",
        {"message_id": INT},
        ["message_id"],
    ),
    "react": (
        "Add a reaction, or take it back with remove: true; idempotent.",
        {"message_id": INT, "emoji": {**STR, "maxLength": 34}, "remove": BOOL},
        ["message_id", "emoji"],
    ),
    "pin": (
        "Pin (pinned: true, the default) or unpin a message.",
        {"message_id": INT, "pinned": BOOL},
        ["message_id"],
    ),
    "pins": (
        "The pinned messages of a conversation.",
        {"conversation_id": INT},
        ["conversation_id"],
    ),
    "thread": (
        "A thread: root, a page of replies (oldest first), summary and your thread "
        "read cursor. after: the oldest replies after it; before alone: the newest "
        "replies before it; neither: the oldest replies.",
        {"root_id": INT, "after": SEQ, "before": SEQ, "limit": LIMIT},
        ["root_id"],
    ),
    "thread_read": (
        "Move your read cursor of a thread.",
        {"root_id": INT, "seq": SEQ},
        ["root_id", "seq"],
    ),
}

SEND_FIELDS: dict[str, Any] = {"reply_to_id": INT, "thread_root_id": INT}

SERVER_FRAMES: dict[str, tuple[str, dict[str, Any], list[str]]] = {
    "pins": (
        "Answer to pins.",
        {"id": ID, "conversation_id": INT, "messages": {"type": "array"}},
        [],
    ),
    "thread": (
        "Answer to thread.",
        {
            "id": ID,
            "root": {"type": "object"},
            "messages": {"type": "array"},
            "summary": {"type": "object"},
            "read_seq": SEQ,
            "unread": INT,
            "has_more": BOOL,
        },
        ["root", "messages", "summary"],
    ),
}
