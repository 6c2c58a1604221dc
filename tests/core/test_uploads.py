"""File kinds from content, safe names and download headers (no I/O)."""

from __future__ import annotations

import pytest

from palaver.core.uploads import content_disposition, safe_filename, sniff
from tests import media


@pytest.mark.parametrize(
    ("head", "kind"),
    [
        (media.image("JPEG"), "jpeg"),
        (media.image("PNG"), "png"),
        (media.image("GIF"), "gif"),
        (media.image("WEBP"), "webp"),
        (media.PDF, "pdf"),
        (b"PK\x03\x04rest", "zip"),
        (b"\x1f\x8b\x08\x00", "gzip"),
        (b"ID3\x04", "mp3"),
        (b"\x00\x00\x00\x18ftypisom", "mp4"),
        (b"OggS\x00", "ogg"),
        (b"\x1a\x45\xdf\xa3", "webm"),
        (b"just words, no markup", "txt"),
        ("caf\u00e9 \u2603".encode(), "txt"),
        (b"\xef\xbb\xbfBOM text", "txt"),
        (media.HTML, "markup"),
        (media.SVG, "markup"),
        (media.XML_SVG, "markup"),
        (b"\n\t <ScRiPt>x</script>", "markup"),
        (b"<!-- comment --><p>hi", "markup"),
        (b"\x7fELF\x02\x01", None),
        (b"MZ\x90\x00\x03\x00\x00\x00", None),
        (b"\xff\xfe\x00\x00binary\x00", None),
        (b"BM" + b"\x00" * 40, None),
    ],
)
def test_sniff_by_content(head: bytes, kind: str | None) -> None:
    assert sniff(head[:4096]) == kind


def test_text_cut_inside_a_character_is_still_text() -> None:
    head = ("a" * 4095 + "\u00e9").encode()[:4096]
    assert sniff(head) == "txt"
    assert sniff(b"\xff\xfe\xfd not utf-8 at all") is None


@pytest.mark.parametrize(
    ("name", "kind", "safe"),
    [
        ("photo.JPG", "jpeg", "photo.JPG"),
        ("photo.png", "jpeg", "photo.png.jpg"),
        ("../../etc/passwd", "txt", "passwd.txt"),
        ("..\\..\\windows\\win.ini", "txt", "win.ini.txt"),
        ("C:\\Users\\ada\\cv.pdf", "pdf", "cv.pdf"),
        ("a\x00b\x1fc\x7f.pdf", "pdf", "abc.pdf"),
        ("in\u202efdp.exe", "pdf", "infdp.exe.pdf"),
        ('a<b>:"|?*.txt', "txt", "a_b______.txt"),
        ("...", "txt", "file.txt"),
        (None, "png", "file.png"),
        ("   ", "gif", "file.gif"),
        ("x" * 500 + ".pdf", "pdf", "x" * 196 + ".pdf"),
    ],
)
def test_safe_filename(name: str | None, kind: str, safe: str) -> None:
    assert safe_filename(name, kind) == safe


def test_content_disposition_has_an_ascii_fallback_and_rfc5987_name() -> None:
    assert content_disposition('naïve "x"; y.pdf', inline=False) == (
        'attachment; filename="na_ve _x__ y.pdf"; '
        "filename*=UTF-8''na%C3%AFve%20%22x%22%3B%20y.pdf"
    )
    assert content_disposition("a.png", inline=True).startswith('inline; filename="a.png"')
