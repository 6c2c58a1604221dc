"""Full-text search rules, sans-I/O: text normalisation, query parsing, highlights,
cursors and the indexer's watermark arithmetic.

Both engines index a normalised copy of each message (compatibility decomposition,
combining marks dropped, case folded) and receive queries normalised the same way, so
"Élan", "ELAN" and "élan" find each other. SQLite's trigram tokenizer cannot remove
diacritics itself, and PostgreSQL's ``unaccent`` would make the two engines disagree.
"""

from __future__ import annotations

import functools
import sys
import unicodedata
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Message, User

#: Trigram indexes cannot look up anything shorter.
MIN_TERM_LENGTH = 3
MAX_QUERY_LENGTH = 256
MAX_TERMS = 8
MAX_LIMIT = 100
DEFAULT_LIMIT = 20
#: Characters of context a snippet keeps around its first match.
SNIPPET_CONTEXT = 60
SNIPPET_MAX = 240


@functools.lru_cache(maxsize=8192)
def _fold_char(char: str) -> str:
    folded = unicodedata.normalize("NFKD", char.casefold())
    return "".join(c for c in folded if not unicodedata.combining(c))


@functools.cache
def _combining_marks() -> dict[int, None]:
    """A ``str.translate`` table that drops every combining mark (built once: 40 ms)."""
    return {cp: None for cp in range(sys.maxunicode + 1) if unicodedata.combining(chr(cp))}


def normalize(text: str) -> str:
    """The searchable form of ``text``: NFKD, combining marks dropped, case folded.

    The whole string at once, in C: the indexer folds every message. With combining
    marks dropped this equals folding character by character (:func:`_fold_char`,
    which :func:`highlight` needs to trace output characters to input ones)."""
    if text.isascii():
        return text.lower()
    return unicodedata.normalize("NFKD", text.casefold()).translate(_combining_marks())


def _normalize_mapped(text: str) -> tuple[str, list[int]]:
    """``normalize(text)`` and, for each of its characters, the index in ``text`` of
    the character it came from."""
    if text.isascii():
        return text.lower(), list(range(len(text)))
    out: list[str] = []
    origin: list[int] = []
    for index, char in enumerate(text):
        folded = _fold_char(char)
        out.append(folded)
        origin.extend([index] * len(folded))
    return "".join(out), origin


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """A parsed query: ``terms`` (normalised, at least :data:`MIN_TERM_LENGTH` long,
    looked up in the index) and ``short_terms`` (1 or 2 characters, checked on the
    candidates only). Every term must occur in a message, in any order."""

    text: str
    terms: tuple[str, ...]
    short_terms: tuple[str, ...]

    @property
    def all_terms(self) -> tuple[str, ...]:
        return self.terms + self.short_terms


def parse_query(raw: object) -> SearchQuery:
    """Split a query on white space into normalised terms.

    Raises ``QUERY_TOO_SHORT`` when no term has :data:`MIN_TERM_LENGTH` characters
    (nothing could use the index), ``INVALID_FORMAT`` when the query is not a string,
    is longer than :data:`MAX_QUERY_LENGTH` or has more than :data:`MAX_TERMS` terms."""
    if not isinstance(raw, str):
        raise PalaverError(ErrorCode.INVALID_FORMAT, "q must be a string", field="q")
    if len(raw) > MAX_QUERY_LENGTH:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, f"q is longer than {MAX_QUERY_LENGTH}", field="q"
        )
    seen: dict[str, None] = {}
    for word in normalize(raw).split():
        seen.setdefault(word, None)
    words = list(seen)
    if len(words) > MAX_TERMS:
        raise PalaverError(
            ErrorCode.INVALID_FORMAT, f"q has more than {MAX_TERMS} words", field="q"
        )
    long_terms = tuple(w for w in words if len(w) >= MIN_TERM_LENGTH)
    if not long_terms:
        raise PalaverError(
            ErrorCode.QUERY_TOO_SHORT,
            f"search for at least {MIN_TERM_LENGTH} characters",
            field="q",
            details={"min_length": MIN_TERM_LENGTH},
        )
    # A short word inside a longer one adds nothing and would only cost a check.
    short = tuple(w for w in words if len(w) < MIN_TERM_LENGTH and not _inside(w, long_terms))
    return SearchQuery(text=raw, terms=long_terms, short_terms=short)


def _inside(word: str, others: Iterable[str]) -> bool:
    return any(word in other for other in others)


def highlight(content: str, terms: Sequence[str]) -> list[tuple[int, int]]:
    """``[start, end)`` ranges of ``content`` (code point offsets) where a term occurs,
    sorted and merged."""
    folded, origin = _normalize_mapped(content)
    spans: list[tuple[int, int]] = []
    for term in terms:
        if not term:
            continue
        start = folded.find(term)
        while start != -1:
            end = start + len(term)
            spans.append((origin[start], origin[end - 1] + 1))
            start = folded.find(term, end)
    spans.sort()
    merged: list[tuple[int, int]] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True, slots=True)
class Segment:
    """A piece of a snippet; ``match`` marks the highlighted ones."""

    text: str
    match: bool


def snippet(content: str, ranges: Sequence[tuple[int, int]]) -> list[Segment]:
    """A short excerpt of ``content`` around its first match, as plain-text segments a
    client renders as text nodes (marked ones emphasised): no markup to escape."""
    if not ranges:
        return [Segment(_clip(content), False)]
    start = max(0, ranges[0][0] - SNIPPET_CONTEXT)
    # Start at a word boundary when one is close, so the excerpt does not open mid-word.
    if start > 0:
        space = content.find(" ", start, ranges[0][0])
        if space != -1:
            start = space + 1
    stop = min(len(content), start + SNIPPET_MAX)
    stop = max(stop, min(len(content), ranges[0][1]))
    segments: list[Segment] = []
    if start > 0:
        segments.append(Segment("…", False))
    at = start
    for begin, end in ranges:
        if begin >= stop:
            break
        if begin > at:
            segments.append(Segment(content[at:begin], False))
        segments.append(Segment(content[max(begin, at) : min(end, stop)], True))
        at = min(end, stop)
    if at < stop:
        segments.append(Segment(content[at:stop], False))
    if stop < len(content):
        segments.append(Segment("…", False))
    return segments


def _clip(text: str) -> str:
    return text if len(text) <= SNIPPET_MAX else text[:SNIPPET_MAX] + "…"


def parse_cursor(raw: object) -> int | None:
    """The message id a page continues before (``next_cursor`` of the previous page)."""
    if raw is None or raw == "":
        return None
    if isinstance(raw, int) and not isinstance(raw, bool) and raw > 0:
        return raw
    if isinstance(raw, str) and raw.isdigit() and len(raw) < 20 and int(raw) > 0:
        return int(raw)
    raise PalaverError(
        ErrorCode.INVALID_FORMAT, "cursor is not one this server gave", field="cursor"
    )


def clamp_limit(limit: int | None) -> int:
    if limit is None:
        return DEFAULT_LIMIT
    return max(1, min(limit, MAX_LIMIT))


@dataclass(frozen=True, slots=True)
class IndexProgress:
    """The outcome of one indexer pass: messages indexed, the watermark before and
    after (equal when nothing could be settled)."""

    indexed: int
    start: int
    watermark: int


def advance_watermark(
    watermark: int, seen: Sequence[tuple[int, int]], now: int, grace_ms: int
) -> int:
    """How far the indexer may move its watermark after reading ``seen`` (the
    ``(id, created_at)`` of the messages after ``watermark``, by id).

    Ids are handed out before commit, so on PostgreSQL id 8 can commit after id 9: a
    missing id may still appear. The watermark stops before such a hole until the
    message after it is ``grace_ms`` old; by then the hole is an id that will never
    come (a rolled-back transaction, a message removed by retention). Everything up to
    the returned watermark is indexed or will never exist."""
    expected = watermark + 1
    for message_id, created_at in seen:
        if message_id != expected and now - created_at < grace_ms:
            break
        watermark = message_id
        expected = message_id + 1
    return watermark


@dataclass(frozen=True, slots=True)
class SearchFilter:
    """What a store search looks for: messages of ``conversation_ids`` containing every
    term of ``query``, optionally from ``sender_id``, created in ``[after, before)``
    (milliseconds), with an id below ``before_id`` (the page cursor); newest first, at
    most ``limit``."""

    query: SearchQuery
    conversation_ids: Sequence[int]
    sender_id: int | None = None
    after: int | None = None
    before: int | None = None
    before_id: int | None = None
    limit: int = DEFAULT_LIMIT


@dataclass(frozen=True, slots=True)
class SearchHit:
    message: Message
    sender: User | None
    highlights: list[tuple[int, int]]
    snippet: list[Segment]


@dataclass(frozen=True, slots=True)
class SearchPage:
    hits: list[SearchHit]
    next_cursor: str | None


def hit_dict(hit: SearchHit) -> dict[str, Any]:
    """A search result as REST and the ``search_results`` frame carry it."""
    m = hit.message
    return {
        "message_id": m.id,
        "conversation_id": m.conversation_id,
        "seq": m.seq,
        "sender_id": m.sender_id,
        "sender": hit.sender.username if hit.sender else None,
        "sender_name": hit.sender.handle if hit.sender else None,
        "kind": m.kind.value,
        "content": m.content,
        "created_at": m.created_at,
        "highlights": [[start, end] for start, end in hit.highlights],
        "snippet": [{"text": s.text, "match": s.match} for s in hit.snippet],
    }


#: Trigrams of one long term the index looks up: the rarest ones of the term.
INDEX_GRAMS = 2


def trigrams(text: str) -> set[str]:
    return {text[i : i + 3] for i in range(len(text) - 2)}


class GramCounts:
    """In how many of a sample of indexed texts each trigram occurs: which trigrams of
    a search term are worth looking up.

    Both indexes read one list per trigram looked up, and a URL or an identifier has
    many, some as common as ``com`` or ``/``-and-a-letter. The two rarest narrow the
    candidates about as well as all of them, at a fraction of the cost; the exact
    substring test then runs on those candidates."""

    def __init__(self, texts: Iterable[str]) -> None:
        counts: Counter[str] = Counter()
        for text in texts:
            counts.update(trigrams(text))
        self._counts = counts

    def rarest(self, term: str, *, alnum: bool = False) -> list[str] | None:
        """The :data:`INDEX_GRAMS` rarest trigrams of ``term`` (only alphanumeric ones
        when ``alnum``: pg_trgm indexes no others), or None when the term is short
        enough to look up whole."""
        grams = trigrams(term)
        if alnum:
            grams = {g for g in grams if g.isalnum()}
        if len(trigrams(term)) <= INDEX_GRAMS + 1 or len(grams) < INDEX_GRAMS:
            return None
        return sorted(grams, key=lambda g: (self._counts[g], g))[:INDEX_GRAMS]
