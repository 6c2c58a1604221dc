"""Names and topics keep every script and emoji, and refuse invisible controls."""

from __future__ import annotations

import pytest

from palaver.core.errors import PalaverError
from palaver.core.names import BIDI_CONTROLS, check_name, hidden_character

# "I want", with a zero-width non-joiner (escaped: ruff takes its letters for Latin).
PERSIAN = "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645"

KEPT = [
    "Ada Lovelace",
    "مرحبا بالعالم",  # Arabic
    "שלום עולם",  # Hebrew
    "Ada (עדה) مرحبا 42",  # mixed directions, no controls needed
    "李小龍",
    "山田\u3000太郎",  # ideographic space
    "Ada\u00a0L.",  # no-break space
    PERSIAN,  # Persian with a zero-width non-joiner
    "क्\u200dष",  # Devanagari with a zero-width joiner
    "\U0001f468\u200d\U0001f469\u200d\U0001f467",  # family: ZWJ sequence
    "\U0001f44d\U0001f3fd",  # skin tone
    "1\ufe0f\u20e3",  # keycap
    "\u2764\ufe0f\u200d\U0001f525",  # heart on fire
    "\U0001f3f4\U000e0067\U000e0062\U000e0065\U000e006e\U000e0067\U000e007f",  # England
    "Zoë, Ångström, Łódź",
    "e\u0301",  # combining acute
]

REFUSED = [
    *(f"Ada{control}evil" for control in sorted(BIDI_CONTROLS)),
    "Ada\u200bLovelace",  # zero-width space
    "Ada\u2060",  # word joiner
    "\ufeffAda",  # byte order mark
    "Ada\u00adLovelace",  # soft hyphen
    "Ada\u180eL",  # Mongolian vowel separator
    "Ada\u2061L",  # invisible function application
    "Ada\x00",
    "Ada\x07L",
    "Ada\x7fL",
    "Ada\x85L",  # C1 control
    "Ada\u2028L",  # line separator
    "Ada\u2029L",  # paragraph separator
    "Ada\U000e0041",  # a tag character outside a flag
    "Ada\U000e0001",  # language tag
    "Ada\ud800",  # lone surrogate
]


@pytest.mark.parametrize("text", KEPT)
def test_scripts_and_emoji_are_kept(text: str) -> None:
    assert hidden_character(text) is None
    assert check_name(text, "name") == text


@pytest.mark.parametrize("text", REFUSED)
def test_controls_are_refused(text: str) -> None:
    found = hidden_character(text)
    assert found is not None
    with pytest.raises(PalaverError) as caught:
        check_name(text, "display_name")
    assert caught.value.code == "VALIDATION_ERROR"
    assert caught.value.field == "display_name"
    assert f"U+{ord(found):04X}" in caught.value.message


def test_line_breaks_only_where_asked() -> None:
    assert hidden_character("one\ntwo\tthree") == "\n"
    assert hidden_character("one\ntwo\tthree", line_breaks=True) is None
    assert hidden_character("one\rtwo", line_breaks=True) == "\r"
    assert hidden_character("one\n\u202etwo", line_breaks=True) == "\u202e"
