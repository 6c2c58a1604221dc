"""Access tokens (JWT, HS256 pinned) and opaque refresh/reset tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

import jwt

from palaver.core.errors import ErrorCode, PalaverError

ALGORITHM = "HS256"
REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub", "sid"]


@dataclass(frozen=True, slots=True)
class AccessClaims:
    user_id: int
    session_id: str
    issued_at: int
    expires_at: int


class TokenService:
    """Issues and verifies access tokens; hashes opaque tokens for storage.

    The signing key is derived from the configured secret, so the raw secret is never
    used directly as a JWT key and a second derived key could serve another purpose.
    """

    def __init__(self, secret: str, *, issuer: str, audience: str, ttl: int) -> None:
        self._key = hmac.new(secret.encode(), b"palaver/jwt/v1", hashlib.sha256).digest()
        self.issuer = issuer
        self.audience = audience
        self.ttl = ttl

    def issue(self, user_id: int, session_id: str, *, now: float | None = None) -> str:
        """A signed access token for one session, valid for ``ttl`` seconds."""
        issued = int(now if now is not None else time.time())
        claims = {
            "sub": str(user_id),
            "sid": session_id,
            "iat": issued,
            "exp": issued + self.ttl,
            "iss": self.issuer,
            "aud": self.audience,
        }
        return jwt.encode(claims, self._key, algorithm=ALGORITHM)

    def verify(self, token: str) -> AccessClaims:
        """Check signature, algorithm, ``exp``, ``iat``, ``iss`` and ``aud``.

        Raises ``TOKEN_EXPIRED`` or ``TOKEN_INVALID``; whether the session is still
        active is the caller's second check.
        """
        try:
            claims = jwt.decode(
                token,
                self._key,
                algorithms=[ALGORITHM],
                audience=self.audience,
                issuer=self.issuer,
                options={"require": REQUIRED_CLAIMS},
                leeway=5,
            )
            return AccessClaims(
                user_id=int(claims["sub"]),
                session_id=str(claims["sid"]),
                issued_at=int(claims["iat"]),
                expires_at=int(claims["exp"]),
            )
        except jwt.ExpiredSignatureError as exc:
            raise PalaverError(ErrorCode.TOKEN_EXPIRED, "access token has expired") from exc
        except (jwt.PyJWTError, ValueError, TypeError) as exc:
            raise PalaverError(ErrorCode.TOKEN_INVALID, "access token is not valid") from exc


def bearer_from_header(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header value, if any."""
    scheme, _, token = (header or "").partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def new_opaque_token() -> str:
    """A random 256-bit token for refresh and password-reset links."""
    return secrets.token_urlsafe(32)


def hash_opaque_token(token: str) -> str:
    """Storage form of an opaque token: tokens are high-entropy, so SHA-256 suffices."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_session_id() -> str:
    return secrets.token_urlsafe(16)
