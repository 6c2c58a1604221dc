"""Uploads without I/O: what a file is (from its bytes), safe names, download headers.

A file's type is decided by its content alone: the name and the ``Content-Type`` the
client sent are never trusted, because a browser that renders ``evil.png`` holding HTML
as a page runs the attacker's script in Palaver's origin.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

#: Raster images Palaver decodes and re-encodes (kind -> MIME type). Only these are ever
#: served inline; everything else is a download.
IMAGE_TYPES: dict[str, str] = {
    "jpeg": "image/jpeg",
    "png": "image/png",
    "gif": "image/gif",
    "webp": "image/webp",
}

#: Other kinds a server may allow (``upload_allowed_types``), each with its MIME type
#: and the file name extensions that fit it.
FILE_TYPES: dict[str, tuple[str, tuple[str, ...]]] = {
    "pdf": ("application/pdf", (".pdf",)),
    "txt": ("text/plain; charset=utf-8", (".txt", ".text", ".log", ".md", ".csv")),
    "zip": ("application/zip", (".zip", ".docx", ".xlsx", ".pptx", ".odt", ".ods", ".odp")),
    "gzip": ("application/gzip", (".gz", ".tgz")),
    "mp3": ("audio/mpeg", (".mp3",)),
    "mp4": ("video/mp4", (".mp4", ".m4v", ".m4a")),
    "ogg": ("audio/ogg", (".ogg", ".oga", ".ogv", ".opus")),
    "webm": ("video/webm", (".webm",)),
}

IMAGE_EXTENSIONS: dict[str, tuple[str, ...]] = {
    "jpeg": (".jpg", ".jpeg"),
    "png": (".png",),
    "gif": (".gif",),
    "webp": (".webp",),
}

DEFAULT_ALLOWED_TYPES = ("pdf", "txt", "zip", "gzip", "mp3", "mp4", "ogg", "webm")

#: Attachments one message may carry.
MAX_ATTACHMENTS = 10

#: Bytes of the head of a file that :func:`sniff` needs.
SNIFF_BYTES = 4096

# Browsers sniff these openings as markup (WHATWG MIME sniffing, "identifying a resource
# with an unknown MIME type"); a text upload starting with one is refused outright.
_MARKUP = re.compile(
    rb"^\s*<(?:!doctype\s+html|html|head|body|script|iframe|svg|\?xml|!--|a[\s>]|img|"
    rb"div|style|title|table|font|br|p[\s>]|b[\s>]|h1|object|embed|meta|link|form)",
    re.IGNORECASE,
)
_MP4_BRANDS = frozenset({b"isom", b"iso2", b"mp41", b"mp42", b"avc1", b"M4V ", b"M4A ", b"dash"})


def sniff(head: bytes) -> str | None:
    """The kind of a file from its first :data:`SNIFF_BYTES` bytes: a key of
    :data:`IMAGE_TYPES` or :data:`FILE_TYPES`, ``"markup"`` for HTML, SVG or XML (never
    accepted), or ``None`` when unknown."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return "gif"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head.startswith(b"%PDF-"):
        return "pdf"
    if head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if head.startswith(b"\x1f\x8b\x08"):
        return "gzip"
    if head.startswith(b"ID3") or head[:2] in (b"\xff\xfb", b"\xff\xf3", b"\xff\xf2"):
        return "mp3"
    if head[4:8] == b"ftyp" and head[8:12] in _MP4_BRANDS:
        return "mp4"
    if head.startswith(b"OggS"):
        return "ogg"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        return "webm"
    return _sniff_text(head)


# Control bytes that never occur in text (tab, line feed, form feed, carriage return
# and escape do).
_BINARY_BYTES = bytes(set(range(0x20)) - {0x09, 0x0A, 0x0C, 0x0D, 0x1B}) + b"\x7f"


def _sniff_text(head: bytes) -> str | None:
    body = head.removeprefix(b"\xef\xbb\xbf")
    if body.translate(None, _BINARY_BYTES) != body:
        return None
    # The head may end inside a multi-byte character; only that tail may be cut.
    try:
        body.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(body) - 3:
            return None
    if _MARKUP.match(body):
        return "markup"
    return "txt"


def is_image(kind: str) -> bool:
    return kind in IMAGE_TYPES


def mime_type(kind: str) -> str:
    """The ``Content-Type`` Palaver serves a file of ``kind`` with."""
    if kind in IMAGE_TYPES:
        return IMAGE_TYPES[kind]
    return FILE_TYPES[kind][0]


def extensions(kind: str) -> tuple[str, ...]:
    if kind in IMAGE_EXTENSIONS:
        return IMAGE_EXTENSIONS[kind]
    return FILE_TYPES[kind][1]


_UNSAFE_NAME_CHARS = re.compile(r'[\\/:*?"<>|\x00-\x1f\x7f]')
MAX_NAME_LENGTH = 200


def safe_filename(name: str | None, kind: str) -> str:
    """A display name for an uploaded file: no directories (``/`` or ``\\``), no control
    or format characters, no leading dots, at most :data:`MAX_NAME_LENGTH` characters,
    and an extension that fits the detected ``kind`` (one is added when it does not, so
    ``evil.png`` holding a PDF becomes ``evil.png.pdf``)."""
    raw = unicodedata.normalize("NFC", name or "")
    raw = re.split(r"[\\/]", raw)[-1]
    cleaned = "".join(
        ch for ch in raw if unicodedata.category(ch) not in ("Cc", "Cf", "Cs", "Co", "Cn")
    )
    cleaned = _UNSAFE_NAME_CHARS.sub("_", cleaned).strip().lstrip(".").strip()
    if not cleaned:
        cleaned = "file"
    fitting = extensions(kind)
    if not cleaned.lower().endswith(fitting):
        cleaned = f"{cleaned}{fitting[0]}"
    if len(cleaned) > MAX_NAME_LENGTH:
        stem, dot, ext = cleaned.rpartition(".")
        ext = (dot + ext)[:16]
        cleaned = stem[: MAX_NAME_LENGTH - len(ext)] + ext
    return cleaned


def content_disposition(name: str, *, inline: bool) -> str:
    """A ``Content-Disposition`` header with an ASCII ``filename`` for old clients and
    the exact name as RFC 5987 ``filename*``."""
    fallback = "".join(ch if 0x20 <= ord(ch) < 0x7F and ch not in '"\\%;' else "_" for ch in name)
    encoded = quote(name, safe="")
    kind = "inline" if inline else "attachment"
    return f"{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}"


class RangeNotSatisfiable(Exception):
    """A ``Range`` that starts past the end of the file (HTTP 416)."""


_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def byte_range(header: str | None, size: int) -> tuple[int, int] | None:
    """The ``(first, last)`` bytes (inclusive) a ``Range`` header asks of a file of
    ``size`` bytes, or ``None`` to send it whole: no header, several ranges or a form
    Palaver does not parse (RFC 9110 lets a server ignore a ``Range``). Raises
    :class:`RangeNotSatisfiable` when it cannot be served."""
    if not header:
        return None
    match = _RANGE.match(header.strip().replace(" ", ""))
    if match is None:
        return None
    first, last = match.groups()
    if not first:
        if not last:
            return None
        suffix = int(last)
        if suffix == 0 or size == 0:
            raise RangeNotSatisfiable
        return max(size - suffix, 0), size - 1
    start = int(first)
    if start >= size:
        raise RangeNotSatisfiable
    end = int(last) if last else size - 1
    if end < start:
        return None
    return start, min(end, size - 1)


@dataclass(frozen=True, slots=True)
class Upload:
    """One stored file. ``storage_key`` and ``thumbnail_key`` name blobs in the
    storage backend; they are random and never shown to clients."""

    id: int
    owner_id: int
    conversation_id: int | None
    name: str
    kind: str
    size: int
    storage_key: str
    created_at: int
    width: int | None = None
    height: int | None = None
    thumbnail_key: str | None = None
    attached_at: int | None = None

    @property
    def blob_keys(self) -> tuple[str, ...]:
        """The storage keys of the file and of its thumbnail."""
        return (
            (self.storage_key,)
            if self.thumbnail_key is None
            else (
                self.storage_key,
                self.thumbnail_key,
            )
        )

    @property
    def content_type(self) -> str:
        return mime_type(self.kind)

    @property
    def inline(self) -> bool:
        """Only re-encoded raster images are shown in the browser; anything else is
        a download."""
        return is_image(self.kind)

    def attachment(self) -> dict[str, Any]:
        """The element a message's ``attachments`` list stores and carries."""
        item: dict[str, Any] = {
            "id": self.id,
            "name": self.name,
            "type": self.content_type,
            "size": self.size,
        }
        if self.width is not None and self.height is not None:
            item["width"] = self.width
            item["height"] = self.height
        if self.thumbnail_key is not None:
            item["thumbnail"] = True
        return item
