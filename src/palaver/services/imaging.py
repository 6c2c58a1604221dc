"""Image re-encoding with Pillow (blocking: run it on a thread).

Decoding an upload and encoding the pixels afresh is what makes an image safe to show:
whatever the original carried besides pixels (EXIF with GPS position, comments, XMP,
ICC profiles, bytes appended after the image end, a second format's payload in a
polyglot) is not in the new file. The EXIF orientation is applied to the pixels first,
so photos stay upright once their EXIF is gone. ICC profiles are dropped too (they are
metadata an attacker controls, and browsers assume sRGB without one).

Animated GIF, PNG and WebP keep their first frame only: one decoded frame bounds the
work per upload (a 1,000-frame GIF is a decompression bomb of its own) and a still image
is what a chat thumbnail shows anyway.
"""

from __future__ import annotations

import mmap
import re
from dataclasses import dataclass
from pathlib import Path

from PIL import ExifTags, Image, UnidentifiedImageError

from palaver.core.errors import ErrorCode, PalaverError

_PIL_FORMATS = {"jpeg": "JPEG", "png": "PNG", "gif": "GIF", "webp": "WEBP"}
# The modes each encoder writes without surprises; anything else is converted.
_SAVE_MODES = {
    "jpeg": ("L", "RGB"),
    "png": ("1", "L", "LA", "P", "RGB", "RGBA", "I", "I;16"),
    "gif": ("L", "P"),
    "webp": ("RGB", "RGBA"),
}
JPEG_QUALITY = 88
#: Scans a JPEG may have. A progressive JPEG from a camera or an encoder has about ten;
#: each scan, however few bytes it holds, makes the decoder walk every block of the
#: image again, so a few megabytes of empty scans keep a core busy for many minutes.
MAX_JPEG_SCANS = 100
_ORIENTATION_FIX = {
    2: Image.Transpose.FLIP_LEFT_RIGHT,
    3: Image.Transpose.ROTATE_180,
    4: Image.Transpose.FLIP_TOP_BOTTOM,
    5: Image.Transpose.TRANSPOSE,
    6: Image.Transpose.ROTATE_270,
    7: Image.Transpose.TRANSVERSE,
    8: Image.Transpose.ROTATE_90,
}


@dataclass(frozen=True, slots=True)
class ImageInfo:
    width: int
    height: int


def too_large(pixels: int | None, max_pixels: int) -> PalaverError:
    what = f"has {pixels} pixels" if pixels is not None else "is too large to decode"
    return PalaverError(
        ErrorCode.IMAGE_TOO_LARGE,
        f"the image {what}; at most {max_pixels} pixels are accepted",
        field="file",
        details={"max_pixels": max_pixels},
    )


def reencode(
    source: Path,
    kind: str,
    target: Path,
    thumbnail: Path,
    *,
    max_pixels: int,
    thumbnail_size: int,
) -> ImageInfo:
    """Decode ``source`` (sniffed as ``kind``), write a clean copy in the same format
    to ``target`` and a thumbnail (longest side ``thumbnail_size``; PNG when it has
    transparency, else JPEG) to ``thumbnail``.

    Raises ``IMAGE_TOO_LARGE`` past ``max_pixels`` (checked from the header, before any
    pixel is decoded) and ``INVALID_IMAGE`` when the file does not decode or is a JPEG
    of more than :data:`MAX_JPEG_SCANS` scans.
    """
    if kind == "jpeg" and jpeg_scans(source) > MAX_JPEG_SCANS:
        raise PalaverError(
            ErrorCode.INVALID_IMAGE,
            f"the image has more than {MAX_JPEG_SCANS} progressive scans",
            field="file",
        )
    try:
        # Past its own limit Pillow only warns (and raises past twice that) while
        # opening; the header check below is the limit that counts.
        with Image.open(source, formats=[_PIL_FORMATS[kind]]) as opened:
            pixels = opened.width * opened.height
            if pixels > max_pixels:
                raise too_large(pixels, max_pixels)
            opened.seek(0)
            opened.load()
            upright = _upright(opened)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise too_large(None, max_pixels) from exc
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError, EOFError) as exc:
        raise PalaverError(
            ErrorCode.INVALID_IMAGE, "the image could not be decoded", field="file"
        ) from exc
    # One full-size image alive beside the one being made (DECODE_SLOTS counts on it):
    # the decoded pixels go once turned upright, the upright ones once converted.
    del opened
    clean = _clean(upright, kind)
    del upright
    save_options: dict[str, object] = {}
    if kind == "jpeg":
        save_options = {"quality": JPEG_QUALITY, "optimize": True}
    elif kind == "webp":
        save_options = {"quality": JPEG_QUALITY}
    clean.save(target, format=_PIL_FORMATS[kind], **save_options)
    info = ImageInfo(width=clean.width, height=clean.height)
    _thumbnail(clean, thumbnail, thumbnail_size)
    return info


def _upright(image: Image.Image) -> Image.Image:
    """``image`` turned as its EXIF orientation says. Pillow's ``exif_transpose`` also
    writes the EXIF block back, which raises on a malformed one; the block is dropped
    anyway, so only the orientation is read, and one that cannot be read is ignored."""
    try:
        orientation = image.getexif().get(ExifTags.Base.Orientation)
    except Exception:  # any parse failure of EXIF an uploader wrote
        orientation = None
    method = _ORIENTATION_FIX.get(orientation) if isinstance(orientation, int) else None
    return image if method is None else image.transpose(method)


# A marker: 0xFF (and fill bytes) then a code that is not stuffing (0x00) or a restart.
_MARKER = re.compile(rb"\xff+[^\x00\xd0-\xd7\xff]")


def jpeg_scans(path: Path) -> int:
    """How many scans (SOS segments) the JPEG at ``path`` has before its end, counted up
    to one past :data:`MAX_JPEG_SCANS`, walking the markers as a decoder does."""
    with path.open("rb") as handle, mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ) as data:
        scans, pos, size = 0, 2, len(data)
        while scans <= MAX_JPEG_SCANS and pos + 4 <= size:
            if data[pos] != 0xFF:
                # Bytes where a marker belongs: decoders skip them to the next one.
                pos = data.find(b"\xff", pos)
                if pos == -1:
                    break
                continue
            marker = data[pos + 1]
            if marker == 0xFF:
                pos += 1
                continue
            if marker == 0xD9:  # end of image
                break
            if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # no length
                pos += 2
                continue
            pos += 2 + int.from_bytes(data[pos + 2 : pos + 4], "big")
            if marker == 0xDA:
                scans += 1
                # Entropy-coded data runs to the next marker.
                found = _MARKER.search(data, pos)
                if found is None:
                    break
                pos = found.end() - 2
        return scans


def _clean(image: Image.Image, kind: str) -> Image.Image:
    """The pixels of ``image`` with no metadata but transparency, in a mode the
    encoder of ``kind`` writes."""
    transparency = image.info.get("transparency")
    if image.mode not in _SAVE_MODES[kind]:
        has_alpha = image.mode in ("RGBA", "LA", "PA") or transparency is not None
        if kind == "gif":
            image = image.convert("RGBA" if has_alpha else "RGB").convert(
                "P", palette=Image.Palette.ADAPTIVE
            )
        elif kind == "webp" and has_alpha:
            image = image.convert("RGBA")
        else:
            image = image.convert("RGB" if kind != "png" or not has_alpha else "RGBA")
        transparency = None
    # Otherwise the image itself: the decoded pixels are not needed twice.
    image.info = {} if transparency is None else {"transparency": transparency}
    return image


def _thumbnail(image: Image.Image, target: Path, size: int) -> None:
    """Write the thumbnail of ``image``, which is shrunk in place when its mode suits
    (the caller is done with it), so no full-size copy is made for it."""
    alpha = image.mode in ("RGBA", "LA", "PA") or "transparency" in image.info
    mode = "RGBA" if alpha else "RGB"
    thumb = image if image.mode == mode else image.convert(mode)
    thumb.thumbnail((size, size), Image.Resampling.LANCZOS)
    thumb.info = {}
    if alpha:
        thumb.save(target, format="PNG", optimize=True)
    else:
        thumb.save(target, format="JPEG", quality=80, optimize=True)
