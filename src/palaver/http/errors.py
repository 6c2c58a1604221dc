"""One JSON error shape for every failure: ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from palaver.core.errors import ErrorCode, PalaverError
from palaver.http.responses import JsonResponse
from palaver.http.socket_paths import socket_paths
from palaver.store.base import StoreUnavailable

log = structlog.get_logger(__name__)

_STATUS_CODES = {
    400: ErrorCode.INVALID_FORMAT,
    401: ErrorCode.UNAUTHORIZED,
    403: ErrorCode.FORBIDDEN,
    404: ErrorCode.NOT_FOUND,
    405: ErrorCode.METHOD_NOT_ALLOWED,
    426: ErrorCode.UPGRADE_REQUIRED,
    409: ErrorCode.CONFLICT,
    413: ErrorCode.CONTENT_TOO_LONG,
    429: ErrorCode.RATE_LIMITED,
}


def error_response(error: PalaverError, headers: dict[str, str] | None = None) -> JsonResponse:
    headers = dict(headers or {})
    if error.retry_after is not None:
        headers["Retry-After"] = str(max(1, round(error.retry_after)))
    if error.http_status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="palaver"'
    return JsonResponse({"error": error.to_dict()}, error.http_status, headers=headers)


async def _palaver_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, PalaverError)
    return error_response(exc)


async def _validation_error(_: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, RequestValidationError)
    first = exc.errors()[0] if exc.errors() else {}
    loc = [str(part) for part in first.get("loc", ())]
    if first.get("type") == "json_invalid":
        return error_response(PalaverError(ErrorCode.INVALID_JSON, "body is not valid JSON"))
    if loc == ["body"]:
        # The body as a whole is missing or not an object (a form, a list, a bare
        # value): pydantic's words for it ("Field required", "a valid dictionary")
        # name no field and do not say what to send.
        text = (
            "the request needs a JSON object body"
            if first.get("type") == "missing"
            else "the body must be a JSON object, sent as application/json"
        )
        return error_response(PalaverError(ErrorCode.VALIDATION_ERROR, text, field="body"))
    if loc and loc[0] in ("body", "query", "path", "header", "cookie"):
        loc = loc[1:]
    field = ".".join(loc) or None
    message = first.get("msg", "invalid request")
    text = f"{field}: {message}" if field else message
    return error_response(PalaverError(ErrorCode.VALIDATION_ERROR, text, field=field))


async def _http_error(request: Request, exc: Exception) -> JsonResponse:
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code == 404 and request.url.path in socket_paths():
        # A plain HTTP request to a socket endpoint (a browser tab, curl, a proxy that
        # drops the Upgrade header): say what is missing rather than "not found".
        return error_response(
            PalaverError(
                ErrorCode.UPGRADE_REQUIRED,
                "this is a WebSocket endpoint: connect with a WebSocket client",
            ),
            headers={"Upgrade": "websocket", "Connection": "Upgrade"},
        )
    code = _STATUS_CODES.get(exc.status_code, ErrorCode.INVALID_FORMAT)
    response = JsonResponse(
        {"error": {"code": code.value, "message": str(exc.detail)}},
        exc.status_code,
        headers=dict(exc.headers or {}),
    )
    return response


async def _unavailable(_: Request, exc: Exception) -> JsonResponse:
    log.warning("database.unavailable", error=str(exc))
    return error_response(
        PalaverError(ErrorCode.UNAVAILABLE, "the database is unavailable; retry", retry_after=1)
    )


async def _internal(_: Request, exc: Exception) -> JsonResponse:
    log.exception("request.failed", exc_info=exc)
    return error_response(PalaverError(ErrorCode.INTERNAL_ERROR, "internal error"))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(PalaverError, _palaver_error)
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_exception_handler(StoreUnavailable, _unavailable)
    app.add_exception_handler(Exception, _internal)
