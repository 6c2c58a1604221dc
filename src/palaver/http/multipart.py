"""A ``multipart/form-data`` upload parsed as it streams in, within a size limit.

Starlette's form parser spools every file part to a temporary file of any size before
the route runs; this one writes the ``file`` part straight to the upload service's
scratch file and stops reading the moment it passes ``upload_max_bytes``.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header

from palaver.core.errors import ErrorCode, PalaverError
from palaver.services.uploads import UploadService

# Room for the boundaries, part headers and the small fields around the file.
ENVELOPE_BYTES = 16 * 1024
MAX_PARTS = 8
MAX_HEADER_BYTES = 2048
MAX_FIELD_BYTES = 32
FLUSH_BYTES = 256 * 1024


@dataclass(frozen=True, slots=True)
class UploadForm:
    path: Path
    filename: str | None
    declared_type: str | None
    conversation_id: int | None


def _bad(message: str) -> PalaverError:
    return PalaverError(ErrorCode.VALIDATION_ERROR, message, field="file")


#: Form fields that may carry the file.
FILE_FIELDS = (b"file", b"image")
#: The other fields read, each at most MAX_FIELD_BYTES.
SMALL_FIELDS = (b"conversation_id",)


class _Parts:
    """The parser's callbacks: collects part headers, small fields and the file."""

    def __init__(self, service: UploadService) -> None:
        self.service = service
        self.limit = service.settings.upload_max_bytes
        self.parts = 0
        self.header_field = bytearray()
        self.header_value = bytearray()
        self.headers: dict[bytes, bytes] = {}
        self.header_bytes = 0
        self.name: bytes | None = None
        self.is_file = False
        self.field = bytearray()
        self.fields: dict[bytes, bytes] = {}
        self.buffer = bytearray()
        self.file_size = 0
        self.file_seen = False
        self.filename: str | None = None
        self.declared_type: str | None = None
        self.ended = False

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise _bad(f"at most {MAX_PARTS} form fields")
        self.headers = {}
        self.header_bytes = 0
        self.name = None
        self.is_file = False
        self.field = bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._count(end - start)
        self.header_value += data[start:end]

    def _count(self, size: int) -> None:
        self.header_bytes += size
        if self.header_bytes > MAX_HEADER_BYTES:
            raise _bad("form part headers too long")

    def on_header_end(self) -> None:
        self.headers[bytes(self.header_field).lower()] = bytes(self.header_value)
        self.header_field = bytearray()
        self.header_value = bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self.headers.get(b"content-disposition", b""))
        self.name = options.get(b"name")
        # "image" is what multer-style clients (seed 003's) name the field.
        if self.name in FILE_FIELDS:
            if self.file_seen:
                raise _bad("one file per upload")
            self.file_seen = True
            self.is_file = True
            raw = options.get(b"filename")
            self.filename = raw.decode("utf-8", "replace") if raw is not None else None
            declared = self.headers.get(b"content-type")
            self.declared_type = declared.decode("latin-1") if declared else None

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self.is_file:
            self.file_size += end - start
            if self.file_size > self.limit:
                raise self.service.too_large()
            self.buffer += data[start:end]
        elif self.name is not None:
            self.field += data[start:end]
            if len(self.field) > MAX_FIELD_BYTES:
                name = self.name.decode("latin-1")[:20]
                if self.name in SMALL_FIELDS:
                    raise _bad(f"form field {name} is too long")
                # Most likely the file, under a name this server does not read it from.
                raise _bad(
                    f"form field {name!r} is too long: the file goes in a field named file "
                    "(or image), and the only other field read is conversation_id"
                )

    def on_part_end(self) -> None:
        if not self.is_file and self.name is not None:
            self.fields[self.name] = bytes(self.field)

    def on_end(self) -> None:
        self.ended = True


async def receive_upload(
    service: UploadService, chunks: AsyncIterator[bytes], content_type: str
) -> UploadForm:
    """Read a multipart body into a scratch file. Raises ``FILE_TOO_LARGE`` as soon as
    the file passes the limit, ``VALIDATION_ERROR`` for a malformed body or a missing
    ``file`` part; on any error the scratch file is removed."""
    kind, options = parse_options_header(content_type)
    boundary = options.get(b"boundary")
    if kind != b"multipart/form-data" or not boundary:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            "send the file as multipart/form-data in a field named file",
            field="file",
        )
    parts = _Parts(service)
    parser = MultipartParser(
        boundary,
        {
            "on_part_begin": parts.on_part_begin,
            "on_header_field": parts.on_header_field,
            "on_header_value": parts.on_header_value,
            "on_header_end": parts.on_header_end,
            "on_headers_finished": parts.on_headers_finished,
            "on_part_data": parts.on_part_data,
            "on_part_end": parts.on_part_end,
            "on_end": parts.on_end,
        },
    )
    budget = service.settings.upload_max_bytes + ENVELOPE_BYTES
    received = 0
    handle, path = service.scratch_file()
    try:
        async for chunk in chunks:
            received += len(chunk)
            if received > budget:
                raise service.too_large()
            try:
                parser.write(chunk)
            except MultipartParseError as exc:
                raise _bad("malformed multipart body") from exc
            if len(parts.buffer) >= FLUSH_BYTES:
                data, parts.buffer = bytes(parts.buffer), bytearray()
                await asyncio.to_thread(handle.write, data)
        parser.finalize()
        if not parts.file_seen:
            raise _bad("the form has no field named file (or image)")
        # The parser holds back the bytes that could begin a boundary, and its finalize
        # checks nothing: without the closing boundary the file would be kept cut short.
        if not parts.ended:
            raise _bad("the multipart body ends before its closing boundary")
        if parts.buffer:
            await asyncio.to_thread(handle.write, bytes(parts.buffer))
        handle.close()
        return UploadForm(
            path=path,
            filename=parts.filename,
            declared_type=parts.declared_type,
            conversation_id=_conversation_id(parts.fields.get(b"conversation_id")),
        )
    except BaseException:
        handle.close()
        path.unlink(missing_ok=True)
        raise


def _conversation_id(raw: bytes | None) -> int | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw.strip())
    except ValueError:
        value = -1
    if value < 0:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR,
            "conversation_id must be a non-negative integer",
            field="conversation_id",
        )
    return value
