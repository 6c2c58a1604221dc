"""Files for upload tests: images with metadata, crafted headers, bombs, polyglots."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import ExifTags, Image

GPS_LATITUDE = (48.0, 51.0, 29.0)


def image(
    fmt: str,
    size: tuple[int, int] = (40, 20),
    *,
    mode: str = "RGB",
    exif: bool = False,
    orientation: int | None = None,
    **save: object,
) -> bytes:
    """An image in ``fmt`` (``JPEG``, ``PNG``, ``GIF``, ``WEBP``); with ``exif`` it
    carries a GPS position, a camera model and, optionally, an orientation tag."""
    picture = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else 1)
    # A left half of another colour shows where the image was turned.
    picture.paste((20, 20, 220) if mode == "RGB" else 2, (0, 0, size[0] // 2, size[1]))
    if exif:
        data = Image.Exif()
        data[ExifTags.Base.Model] = "SpyCam 3000"
        if orientation is not None:
            data[ExifTags.Base.Orientation] = orientation
        gps = data.get_ifd(ExifTags.IFD.GPSInfo)
        gps[ExifTags.GPS.GPSLatitudeRef] = "N"
        gps[ExifTags.GPS.GPSLatitude] = GPS_LATITUDE
        gps[ExifTags.GPS.GPSLongitudeRef] = "E"
        gps[ExifTags.GPS.GPSLongitude] = (2.0, 17.0, 40.0)
        save["exif"] = data.tobytes()
    out = io.BytesIO()
    picture.save(out, format=fmt, **save)
    return out.getvalue()


def animated_gif(frames: int = 3) -> bytes:
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0)]
    images = [Image.new("RGB", (16, 16), colours[i % len(colours)]) for i in range(frames)]
    out = io.BytesIO()
    images[0].save(out, format="GIF", save_all=True, append_images=images[1:], loop=0)
    return out.getvalue()


def _chunk(kind: bytes, data: bytes) -> bytes:
    body = kind + data
    return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))


def png_bomb(width: int, height: int) -> bytes:
    """A valid greyscale PNG of ``width`` x ``height`` black pixels: a few kilobytes
    that decode to ``width * height`` bytes."""
    compressor = zlib.compressobj(9)
    row = b"\x00" * (width + 1)
    parts = [compressor.compress(row) for _ in range(height)]
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", b"".join(parts))
        + _chunk(b"IEND", b"")
    )


def png_header_only(width: int, height: int) -> bytes:
    """A PNG that claims huge dimensions and carries almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(b"\x00" * 64))
        + _chunk(b"IEND", b"")
    )


PDF = b"%PDF-1.4\n1 0 obj<<>>endobj\ntrailer<<>>\n%%EOF\n"
HTML = b"<!DOCTYPE html><html><body><script>alert(document.cookie)</script></body></html>"
SVG = (
    b'<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10">'
    b"<script>alert(1)</script></svg>"
)
XML_SVG = b'<?xml version="1.0"?>\n' + SVG
PAYLOAD = b"<script>alert('polyglot')</script>"
