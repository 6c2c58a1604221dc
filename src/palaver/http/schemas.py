"""Request and response bodies of the REST API (they make the OpenAPI document)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from palaver.core.models import Session, User


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class RegisterIn(Strict):
    username: str | None = Field(None, max_length=64, examples=["ada"])
    email: str | None = Field(None, max_length=254, examples=["ada@example.com"])
    password: str = Field(..., max_length=1024, examples=["Correct-Horse-9"])
    display_name: str | None = Field(None, max_length=128)


class LoginIn(Strict):
    login: str | None = Field(None, max_length=254, description="username or e-mail")
    username: str | None = Field(None, max_length=254)
    email: str | None = Field(None, max_length=254)
    password: str = Field(..., max_length=1024)
    device: str | None = Field(None, max_length=256)


class RefreshIn(Strict):
    refresh_token: str | None = Field(
        None, max_length=256, description="omit to use the HttpOnly cookie set at login"
    )


class PasswordChangeIn(Strict):
    current_password: str = Field(..., max_length=1024)
    new_password: str = Field(..., max_length=1024)


class PasswordResetRequestIn(Strict):
    email: str = Field(..., max_length=254)


class PasswordResetIn(Strict):
    token: str = Field(..., max_length=256)
    new_password: str = Field(..., max_length=1024)


class ProfileIn(Strict):
    display_name: str | None = Field(None, max_length=128)
    avatar_url: str | None = Field(None, max_length=512)


class DeleteAccountIn(Strict):
    password: str = Field(..., max_length=1024)


class UserOut(BaseModel):
    id: int
    username: str | None
    display_name: str
    avatar_url: str | None
    created_at: int
    last_seen_at: int | None = None
    deleted: bool = False

    @classmethod
    def of(cls, user: User) -> UserOut:
        return cls(
            id=user.id,
            username=user.username,
            display_name=user.display_name,
            avatar_url=user.avatar_url,
            created_at=user.created_at,
            last_seen_at=user.last_seen_at,
            deleted=user.deleted_at is not None,
        )


class MeOut(UserOut):
    email: str | None
    is_admin: bool
    is_active: bool

    @classmethod
    def of(cls, user: User) -> MeOut:
        return cls(
            **UserOut.of(user).model_dump(),
            email=user.email,
            is_admin=user.is_admin,
            is_active=user.is_active,
        )


class TokensOut(BaseModel):
    access_token: str
    token: str = Field(description="same as access_token, for clients that expect `token`")
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="access token lifetime in seconds")
    user: MeOut


class SessionOut(BaseModel):
    id: str
    device: str
    ip: str
    created_at: int
    last_seen_at: int
    expires_at: int
    current: bool

    @classmethod
    def of(cls, session: Session, current_id: str) -> SessionOut:
        return cls(
            id=session.id,
            device=session.device,
            ip=session.ip,
            created_at=session.created_at,
            last_seen_at=session.last_seen_at,
            expires_at=session.expires_at,
            current=session.id == current_id,
        )


class ErrorBody(BaseModel):
    code: str
    message: str
    field: str | None = None
    retry_after: float | None = None


class ErrorOut(BaseModel):
    error: ErrorBody


class Page(BaseModel):
    items: list[Any]
    next_offset: int | None = None


ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    **{status: {"model": ErrorOut} for status in (400, 401, 403, 404, 409, 422, 429, 503)},
    # The upload route replaces it with its own 413s.
    413: {
        "model": ErrorOut,
        "description": "`BODY_TOO_LARGE`: the body passes `body_max_bytes` (`max_bytes`)",
    },
}
