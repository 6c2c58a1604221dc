"""What names and topics may hold: any script, but no invisible control characters.

Display names, room and group names and topics are shown to other people, in lists
and in notices, next to text they did not write. A right-to-left override makes
``"Ada\\u202eevil"`` read "Adalive" and reorders whatever follows it on the line; an
isolate or embedding left open does the same; a zero-width space makes two names that
look the same different. Such characters are refused, not removed: removing them would
store something other than what was typed, without saying so, and a client that sends
them is better told.

Kept: every script's letters and marks (Arabic, Hebrew and the rest reorder by
themselves, without controls), spaces, the zero-width joiner and non-joiner (Persian
and Indic scripts need them, as do emoji sequences such as a family), variation
selectors, and the tag characters of subdivision flags. Usernames are plain ASCII
(:data:`palaver.core.accounts.USERNAME_RE`) and need none of this.
"""

from __future__ import annotations

import unicodedata

from palaver.core.errors import ErrorCode, PalaverError

#: Explicit bidirectional formatting: the Arabic letter mark, the left-to-right and
#: right-to-left marks, embeddings, overrides and their pop, isolates and theirs.
BIDI_CONTROLS = frozenset(
    "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
)
_JOINERS = frozenset("\u200c\u200d")
# Control (Cc), format (Cf), surrogate (Cs) and line and paragraph separators (Zl, Zp).
_REFUSED = frozenset({"Cc", "Cf", "Cs", "Zl", "Zp"})
_BLACK_FLAG = "\U0001f3f4"
_TAGS = ("\U000e0020", "\U000e007f")  # tag letters and digits, then the cancel tag


def hidden_character(text: str, *, line_breaks: bool = False) -> str | None:
    """The first character of ``text`` that a name must not hold, or ``None``.

    ``line_breaks`` lets line feeds and tabs through (topics have several lines)."""
    in_flag = False
    for char in text:
        # Tag characters only spell a subdivision flag after a black flag (England's
        # is U+1F3F4 followed by "gbeng" in tags and a cancel tag).
        if in_flag and _TAGS[0] <= char <= _TAGS[1]:
            in_flag = char != _TAGS[1]
            continue
        in_flag = char == _BLACK_FLAG
        if char < " " or char == "\x7f":
            if line_breaks and char in "\n\t":
                continue
            return char
        if char.isascii() or char in _JOINERS:
            continue
        if char in BIDI_CONTROLS or unicodedata.category(char) in _REFUSED:
            return char
    return None


def check_name(text: str, field: str, *, line_breaks: bool = False) -> str:
    """``text`` when it holds no character :func:`hidden_character` refuses; otherwise
    ``VALIDATION_ERROR`` naming ``field`` and the character's code point."""
    found = hidden_character(text, line_breaks=line_breaks)
    if found is not None:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            # Shown to people as is: "display name", not the key "display_name".
            f"{field.replace('_', ' ')} holds U+{ord(found):04X}: invisible and "
            "direction-changing "
            "control characters are not allowed",
            field=field,
        )
    return text
