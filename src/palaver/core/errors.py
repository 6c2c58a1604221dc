"""Stable error codes shared by REST (``{"error": {"code", "message"}}``) and the socket
(``{"type": "error", "code", "message"}``).

Codes are part of the public API: add new ones, never rename or reuse old ones.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class ErrorCode(StrEnum):
    # Wire format (seed 004's codes, kept verbatim for its clients).
    INVALID_JSON = "INVALID_JSON"
    INVALID_FORMAT = "INVALID_FORMAT"
    MISSING_TYPE = "MISSING_TYPE"
    UNKNOWN_TYPE = "UNKNOWN_TYPE"
    MISSING_RECIPIENT = "MISSING_RECIPIENT"
    EMPTY_CONTENT = "EMPTY_CONTENT"
    CONTENT_TOO_LONG = "CONTENT_TOO_LONG"
    SELF_MESSAGE = "SELF_MESSAGE"
    RATE_LIMITED = "RATE_LIMITED"
    INTERNAL_ERROR = "INTERNAL_ERROR"
    # Requests.
    VALIDATION_ERROR = "VALIDATION_ERROR"
    BODY_TOO_LARGE = "BODY_TOO_LARGE"
    METHOD_NOT_ALLOWED = "METHOD_NOT_ALLOWED"
    UPGRADE_REQUIRED = "UPGRADE_REQUIRED"
    NOT_FOUND = "NOT_FOUND"
    FORBIDDEN = "FORBIDDEN"
    CONFLICT = "CONFLICT"
    WEAK_PASSWORD = "WEAK_PASSWORD"
    # Authentication.
    UNAUTHORIZED = "UNAUTHORIZED"
    INVALID_CREDENTIALS = "INVALID_CREDENTIALS"
    TOKEN_EXPIRED = "TOKEN_EXPIRED"
    TOKEN_INVALID = "TOKEN_INVALID"
    SESSION_REVOKED = "SESSION_REVOKED"
    ACCOUNT_DISABLED = "ACCOUNT_DISABLED"
    REGISTRATION_CLOSED = "REGISTRATION_CLOSED"
    # Moderation.
    MUTED = "MUTED"
    BANNED = "BANNED"
    CONTENT_REJECTED = "CONTENT_REJECTED"
    # Delivery.
    HISTORY_GAP = "HISTORY_GAP"
    UNAVAILABLE = "UNAVAILABLE"
    # Search.
    QUERY_TOO_SHORT = "QUERY_TOO_SHORT"
    # Uploads.
    FILE_TOO_LARGE = "FILE_TOO_LARGE"
    IMAGE_TOO_LARGE = "IMAGE_TOO_LARGE"
    UNSUPPORTED_FILE_TYPE = "UNSUPPORTED_FILE_TYPE"
    INVALID_IMAGE = "INVALID_IMAGE"


HTTP_STATUS: dict[ErrorCode, int] = {
    ErrorCode.INVALID_JSON: 400,
    ErrorCode.INVALID_FORMAT: 400,
    ErrorCode.MISSING_TYPE: 400,
    ErrorCode.UNKNOWN_TYPE: 400,
    ErrorCode.MISSING_RECIPIENT: 400,
    ErrorCode.EMPTY_CONTENT: 400,
    ErrorCode.CONTENT_TOO_LONG: 413,
    ErrorCode.SELF_MESSAGE: 400,
    ErrorCode.RATE_LIMITED: 429,
    ErrorCode.INTERNAL_ERROR: 500,
    ErrorCode.VALIDATION_ERROR: 422,
    ErrorCode.BODY_TOO_LARGE: 413,
    ErrorCode.METHOD_NOT_ALLOWED: 405,
    ErrorCode.UPGRADE_REQUIRED: 426,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FORBIDDEN: 403,
    ErrorCode.CONFLICT: 409,
    ErrorCode.WEAK_PASSWORD: 422,
    ErrorCode.UNAUTHORIZED: 401,
    ErrorCode.INVALID_CREDENTIALS: 401,
    ErrorCode.TOKEN_EXPIRED: 401,
    ErrorCode.TOKEN_INVALID: 401,
    ErrorCode.SESSION_REVOKED: 401,
    ErrorCode.ACCOUNT_DISABLED: 403,
    ErrorCode.REGISTRATION_CLOSED: 403,
    ErrorCode.MUTED: 403,
    ErrorCode.BANNED: 403,
    ErrorCode.CONTENT_REJECTED: 422,
    ErrorCode.HISTORY_GAP: 410,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.QUERY_TOO_SHORT: 400,
    ErrorCode.FILE_TOO_LARGE: 413,
    ErrorCode.IMAGE_TOO_LARGE: 413,
    ErrorCode.UNSUPPORTED_FILE_TYPE: 415,
    ErrorCode.INVALID_IMAGE: 422,
}


#: Codes no ``error`` frame of the native socket carries: HTTP's own (a refused socket
#: handshake is an HTTP answer, so its ``UNAUTHORIZED`` is too), accounts and uploads
#: (REST only), and ``HISTORY_GAP``, the code of a ``gap`` frame rather than an error.
NOT_ON_SOCKET: frozenset[ErrorCode] = frozenset(
    {
        ErrorCode.BODY_TOO_LARGE,
        ErrorCode.METHOD_NOT_ALLOWED,
        ErrorCode.UPGRADE_REQUIRED,
        ErrorCode.UNAUTHORIZED,
        ErrorCode.INVALID_CREDENTIALS,
        ErrorCode.WEAK_PASSWORD,
        ErrorCode.REGISTRATION_CLOSED,
        ErrorCode.HISTORY_GAP,
        ErrorCode.FILE_TOO_LARGE,
        ErrorCode.IMAGE_TOO_LARGE,
        ErrorCode.UNSUPPORTED_FILE_TYPE,
        ErrorCode.INVALID_IMAGE,
    }
)
#: The codes a socket ``error`` frame may carry (the AsyncAPI enum). A new code joins
#: them unless listed above: a client that checks the enum must never meet an unknown one.
SOCKET_CODES: tuple[ErrorCode, ...] = tuple(c for c in ErrorCode if c not in NOT_ON_SOCKET)


class PalaverError(Exception):
    """A refusal with a stable code, a human message and optional details.

    ``retry_after`` (seconds) is set for ``RATE_LIMITED`` and ``UNAVAILABLE``;
    ``field`` names the offending input for validation errors.
    """

    def __init__(
        self,
        code: ErrorCode,
        message: str,
        *,
        field: str | None = None,
        retry_after: float | None = None,
        details: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.field = field
        self.retry_after = retry_after
        self.details = details or {}

    @property
    def http_status(self) -> int:
        return HTTP_STATUS[self.code]

    def to_dict(self) -> dict[str, Any]:
        """The error as the ``error`` object of a REST body (and the body of a frame)."""
        body: dict[str, Any] = {"code": self.code.value, "message": self.message}
        if self.field is not None:
            body["field"] = self.field
        if self.retry_after is not None:
            body["retry_after"] = self.retry_after
        body.update(self.details)
        return body


def not_found(what: str = "conversation") -> PalaverError:
    """The one refusal outsiders get, whether the thing is missing or merely hidden."""
    return PalaverError(ErrorCode.NOT_FOUND, f"{what} not found")
