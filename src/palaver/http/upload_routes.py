"""``/api/upload``, ``/api/uploads/{id}`` and ``/api/me/export``: files in and out.

Every file goes out with ``nosniff``, the type Palaver detected (never the one the
client claimed), a ``Content-Disposition`` that is ``inline`` only for re-encoded raster
images, and a CSP that lets nothing in the response run, even when opened directly.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field
from starlette.background import BackgroundTask
from starlette.responses import FileResponse, Response, StreamingResponse

from palaver.core.errors import not_found
from palaver.core.uploads import RangeNotSatisfiable, Upload, byte_range, content_disposition
from palaver.http.deps import PrincipalDep, ServicesDep, client_ip
from palaver.http.multipart import receive_upload
from palaver.http.schemas import ERROR_RESPONSES

router = APIRouter(tags=["uploads"], responses=ERROR_RESPONSES)

FILE_CSP = "default-src 'none'; sandbox"
#: Bounded by ``upload_max_bytes`` as it streams, not by ``body_max_bytes``.
UPLOAD_PATH = "/api/upload"


class UploadOut(BaseModel):
    id: int
    name: str = Field(description="the file name, made safe; its extension fits the type")
    type: str = Field(description="the MIME type detected from the content")
    size: int = Field(description="bytes (of the re-encoded file, for images)")
    width: int | None = None
    height: int | None = None
    thumbnail: bool = Field(description="whether GET /api/uploads/{id}/thumbnail exists")
    conversation_id: int | None = Field(
        description="the conversation whose members may read it; null: only the uploader"
    )
    created_at: int
    url: str
    thumbnail_url: str | None = None

    @classmethod
    def of(cls, upload: Upload) -> UploadOut:
        return cls(
            id=upload.id,
            name=upload.name,
            type=upload.content_type,
            size=upload.size,
            width=upload.width,
            height=upload.height,
            thumbnail=upload.thumbnail_key is not None,
            conversation_id=upload.conversation_id,
            created_at=upload.created_at,
            url=f"/api/uploads/{upload.id}",
            thumbnail_url=(
                f"/api/uploads/{upload.id}/thumbnail" if upload.thumbnail_key is not None else None
            ),
        )


_UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "properties": {
                        "file": {"type": "string", "format": "binary"},
                        "image": {
                            "type": "string",
                            "format": "binary",
                            "description": "the same as file (the name multer clients use); "
                            "one of the two is required",
                        },
                        "conversation_id": {
                            "type": "integer",
                            "description": "bind the file to this conversation at once",
                        },
                    },
                }
            }
        },
    }
}


@router.post(
    UPLOAD_PATH,
    status_code=201,
    response_model=UploadOut,
    openapi_extra=_UPLOAD_BODY,
    responses={413: {"description": "FILE_TOO_LARGE or IMAGE_TOO_LARGE"}, 415: {}},
)
async def upload(request: Request, principal: PrincipalDep, services: ServicesDep) -> UploadOut:
    """Upload one file (multipart field ``file``, or ``image``; optional
    ``conversation_id``).

    JPEG, PNG, GIF and WebP images are decoded and re-encoded without their metadata
    (EXIF, GPS, comments, ICC), upright, first frame only, with a thumbnail; other
    files are accepted when their content is of a kind in ``upload_allowed_types``.
    HTML, SVG and XML are refused. Errors: ``FILE_TOO_LARGE`` (413, past
    ``upload_max_bytes``), ``IMAGE_TOO_LARGE`` (413, past ``upload_max_pixels``),
    ``UNSUPPORTED_FILE_TYPE`` (415), ``INVALID_IMAGE`` (422), ``RATE_LIMITED`` (429).
    """
    uploads = services.uploads
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > services.settings.upload_max_bytes + 16 * 1024:
        raise uploads.too_large()
    user_id = principal.user.id
    await uploads.check_rate(user_id)
    form = await receive_upload(uploads, request.stream(), request.headers.get("content-type", ""))
    stored = await uploads.store_spooled(
        user_id,
        form.filename,
        form.declared_type,
        form.path,
        conversation_id=form.conversation_id,
        check_rate=False,
    )
    return UploadOut.of(stored)


@router.get("/api/uploads/{upload_id}/info", response_model=UploadOut)
async def upload_info(upload_id: int, principal: PrincipalDep, services: ServicesDep) -> UploadOut:
    """The metadata of an upload the caller may read."""
    return UploadOut.of(await services.uploads.readable(principal.user.id, upload_id))


_FILE_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {
        "description": "the file, with nosniff, its detected type and a restrictive CSP",
        "content": {"application/octet-stream": {}},
    }
}
_RANGE_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_FILE_RESPONSE,
    206: {
        "description": "the bytes a single `Range: bytes=first-last` asked for, with "
        "`Content-Range`",
        "content": {"application/octet-stream": {}},
    },
    416: {
        "description": "the range starts past the end of the file (`Content-Range: bytes */size`)"
    },
}


@router.get(
    "/api/uploads/{upload_id}", response_class=StreamingResponse, responses=_RANGE_RESPONSES
)
@router.head(
    "/api/uploads/{upload_id}",
    operation_id="download_head",
    response_class=Response,
    responses=_RANGE_RESPONSES,
)
async def download(
    upload_id: int, request: Request, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """The file, for its uploader and the members of the conversation it is bound to;
    anyone else gets ``NOT_FOUND``, as for an id that does not exist. ``HEAD`` gives the
    headers alone; one ``Range: bytes=first-last`` (or ``first-``, ``-suffix``) gives
    206 with those bytes (several ranges: the whole file)."""
    found = await services.uploads.readable(principal.user.id, upload_id)
    headers = _headers(found)
    headers["Accept-Ranges"] = "bytes"
    try:
        span = byte_range(request.headers.get("range"), found.size)
    except RangeNotSatisfiable:
        headers["Content-Range"] = f"bytes */{found.size}"
        return Response(status_code=416, headers=headers)
    status, length = 200, found.size
    if span is not None:
        status, length = 206, span[1] - span[0] + 1
        headers["Content-Range"] = f"bytes {span[0]}-{span[1]}/{found.size}"
    if request.method == "HEAD":
        headers["Content-Length"] = str(length)
        return Response(status_code=status, headers=headers, media_type=found.content_type)
    if span is None:
        chunks = services.uploads.content(found)
    else:
        chunks = services.uploads.content_range(found, *span)
    first = await _first(chunks)
    response = _stream(found, first, chunks, found.content_type, size=length, headers=headers)
    response.status_code = status
    return response


@router.get(
    "/api/uploads/{upload_id}/thumbnail",
    response_class=StreamingResponse,
    responses=_FILE_RESPONSE,
)
async def thumbnail(
    upload_id: int, principal: PrincipalDep, services: ServicesDep
) -> StreamingResponse:
    """The thumbnail of an image upload (JPEG, or PNG when it has transparency)."""
    found = await services.uploads.readable(principal.user.id, upload_id)
    chunks = services.uploads.content(found, thumbnail=True)
    first = await _first(chunks)
    kind = "image/png" if first.startswith(b"\x89PNG") else "image/jpeg"
    return _stream(found, first, chunks, kind, size=None)


async def _first(chunks: AsyncIterator[bytes]) -> bytes:
    try:
        return await anext(chunks, b"")
    except FileNotFoundError:
        raise not_found("upload") from None


def _headers(upload: Upload) -> dict[str, str]:
    return {
        "Content-Disposition": content_disposition(upload.name, inline=upload.inline),
        "X-Content-Type-Options": "nosniff",
        "Content-Security-Policy": FILE_CSP,
        "Cache-Control": "private, max-age=3600",
    }


def _stream(
    upload: Upload,
    first: bytes,
    chunks: AsyncIterator[bytes],
    content_type: str,
    *,
    size: int | None,
    headers: dict[str, str] | None = None,
) -> StreamingResponse:
    async def body() -> AsyncIterator[bytes]:
        yield first
        async for chunk in chunks:
            yield chunk

    headers = headers if headers is not None else _headers(upload)
    if size is not None:
        headers["Content-Length"] = str(size)
    return StreamingResponse(body(), media_type=content_type, headers=headers)


@router.get(
    "/api/me/export",
    response_class=FileResponse,
    responses={200: {"description": "a zip archive", "content": {"application/zip": {}}}},
)
async def export(request: Request, principal: PrincipalDep, services: ServicesDep) -> FileResponse:
    """A zip archive of the caller's own data: ``profile.json``, ``messages.jsonl`` (one
    message a line, with its conversation's id and name), ``uploads.json`` and the
    uploaded files under ``uploads/``. Audited; two at once, then one per 15 minutes
    (``RATE_LIMITED`` with ``Retry-After``)."""
    path: Path = await services.exports.build(principal.user, ip=client_ip(request))
    name = f"palaver-export-{principal.user.id}.zip"
    return FileResponse(
        path,
        media_type="application/zip",
        headers={
            "Content-Disposition": content_disposition(name, inline=False),
            "Cache-Control": "no-store",
            "X-Content-Type-Options": "nosniff",
        },
        background=BackgroundTask(path.unlink, missing_ok=True),
    )
