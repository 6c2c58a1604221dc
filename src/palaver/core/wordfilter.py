"""The content filter: whole words from a list, matched regardless of case and accents.

Sans-I/O and pure: :func:`compile_filter` turns a word list into one regular expression
over a folded copy of the text (cached, so each distinct list is compiled once), and
:meth:`WordFilter.apply` masks the matches in the original text, keeping its accents,
case and length.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from enum import StrEnum

MAX_WORDS = 1000
MAX_WORD_LENGTH = 64


class FilterAction(StrEnum):
    MASK = "mask"  # replace each matched word by asterisks
    REJECT = "reject"  # refuse the message (CONTENT_REJECTED)


@functools.lru_cache(maxsize=4096)
def _fold_char(char: str) -> str:
    decomposed = unicodedata.normalize("NFKD", char)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def fold(text: str) -> str:
    """Lower-case, compatibility-decomposed text without diacritics (é → e, ﬁ → fi)."""
    return "".join(_fold_char(c) for c in text)


@dataclass(frozen=True, slots=True)
class FilterResult:
    text: str
    hits: tuple[str, ...]  # the folded words found, in order


class WordFilter:
    """One compiled word list."""

    __slots__ = ("pattern", "words")

    def __init__(self, words: tuple[str, ...]) -> None:
        self.words = words
        if words:
            # Longest first, so "foo bar" wins over "foo"; lookarounds instead of \b so
            # words that start or end with punctuation still match whole.
            # Phrases match across any run of white space.
            alternatives = "|".join(
                re.escape(w).replace(r"\ ", r"\s+") for w in sorted(words, key=len, reverse=True)
            )
            self.pattern: re.Pattern[str] | None = re.compile(rf"(?<!\w)(?:{alternatives})(?!\w)")
        else:
            self.pattern = None

    def apply(self, text: str) -> FilterResult:
        """The text with every listed word masked, and the words found."""
        if self.pattern is None:
            return FilterResult(text, ())
        if text.isascii():
            # Most chat text: folding is lower-casing, one character for one.
            matches = list(self.pattern.finditer(text.lower()))
            if not matches:
                return FilterResult(text, ())
            owner: range | list[int] = range(len(text))
        else:
            folded_parts: list[str] = []
            owner = []  # index in ``text`` of each folded character
            for index, char in enumerate(text):
                part = _fold_char(char)
                folded_parts.append(part)
                owner.extend([index] * len(part))
            matches = list(self.pattern.finditer("".join(folded_parts)))
            if not matches:
                return FilterResult(text, ())
        chars = list(text)
        for match in matches:
            first, last = owner[match.start()], owner[match.end() - 1]
            for i in range(first, last + 1):
                if not chars[i].isspace():
                    chars[i] = "*"
        return FilterResult("".join(chars), tuple(m.group() for m in matches))


def normalise_words(words: Iterable[str]) -> tuple[str, ...]:
    """Fold, trim and de-duplicate a word list (blank entries dropped), sorted so equal
    lists share one compiled filter."""
    found = {" ".join(fold(w).split()) for w in words}
    found.discard("")
    if len(found) > MAX_WORDS:
        raise ValueError(f"at most {MAX_WORDS} words")
    if any(len(w) > MAX_WORD_LENGTH for w in found):
        raise ValueError(f"words are at most {MAX_WORD_LENGTH} characters")
    return tuple(sorted(found))


@functools.lru_cache(maxsize=1024)
def compile_filter(words: tuple[str, ...]) -> WordFilter:
    """The filter of an already normalised word list (compiled once per list)."""
    return WordFilter(words)
