"""``/api/auth``: registration, login, token refresh, sessions, passwords, the account."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from palaver.core.errors import ErrorCode, PalaverError
from palaver.http.deps import PrincipalDep, ServicesDep, client_ip
from palaver.http.schemas import (
    ERROR_RESPONSES,
    DeleteAccountIn,
    LoginIn,
    MeOut,
    PasswordChangeIn,
    PasswordResetIn,
    PasswordResetRequestIn,
    ProfileIn,
    RefreshIn,
    RegisterIn,
    SessionOut,
    TokensOut,
)
from palaver.services.auth import LoginResult

REFRESH_COOKIE = "palaver_refresh"
COOKIE_PATH = "/api/auth"

router = APIRouter(prefix="/api/auth", tags=["auth"], responses=ERROR_RESPONSES)


def _tokens(request: Request, response: Response, result: LoginResult) -> TokensOut:
    """The login body, plus the refresh token as an HttpOnly cookie for the web client."""
    response.set_cookie(
        REFRESH_COOKIE,
        result.refresh_token,
        max_age=request.app.state.services.settings.refresh_token_ttl,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return TokensOut(
        access_token=result.access_token,
        token=result.access_token,
        refresh_token=result.refresh_token,
        expires_in=result.expires_in,
        user=MeOut.of(result.user),
    )


def _clear_cookie(response: Response) -> None:
    response.delete_cookie(REFRESH_COOKIE, path=COOKIE_PATH, httponly=True, samesite="strict")


def _device(request: Request, given: str | None) -> str:
    return (given or request.headers.get("user-agent", ""))[:256]


@router.post("/register", status_code=201, response_model=TokensOut)
async def register(
    body: RegisterIn, request: Request, response: Response, services: ServicesDep
) -> TokensOut:
    """Create an account (by username, e-mail or both) and log it in."""
    ip = client_ip(request)
    user = await services.auth.register(
        username=body.username,
        email=body.email,
        password=body.password,
        display_name=body.display_name,
        ip=ip,
    )
    services.metrics.registrations.inc()
    result = await services.auth.open_session(user, ip=ip, device=_device(request, None))
    return _tokens(request, response, result)


@router.post("/login", response_model=TokensOut)
async def login(
    body: LoginIn, request: Request, response: Response, services: ServicesDep
) -> TokensOut:
    """Log in with ``login`` (username or e-mail), ``username`` or ``email``."""
    login_name = body.login or body.username or body.email
    if not login_name:
        raise PalaverError(
            ErrorCode.VALIDATION_ERROR, "login, username or email is required", field="login"
        )
    try:
        result = await services.auth.login(
            login_name,
            body.password,
            ip=client_ip(request),
            device=_device(request, body.device),
        )
    except PalaverError as exc:
        services.metrics.logins.labels(outcome=exc.code.value.lower()).inc()
        raise
    services.metrics.logins.labels(outcome="success").inc()
    return _tokens(request, response, result)


@router.post("/refresh", response_model=TokensOut)
async def refresh(
    request: Request, response: Response, services: ServicesDep, body: RefreshIn | None = None
) -> TokensOut:
    """Rotate the refresh token (from the body or the HttpOnly cookie). Presenting a
    token that was already used ends that session everywhere."""
    token = (body.refresh_token if body else None) or request.cookies.get(REFRESH_COOKIE)
    if not token:
        raise PalaverError(
            ErrorCode.UNAUTHORIZED, "a refresh token is required", field="refresh_token"
        )
    try:
        result = await services.auth.refresh(token, ip=client_ip(request))
    except PalaverError:
        _clear_cookie(response)
        raise
    return _tokens(request, response, result)


@router.post("/logout", status_code=204)
async def logout(principal: PrincipalDep, request: Request, services: ServicesDep) -> Response:
    """End this session: its access and refresh tokens stop working, its sockets close."""
    await services.auth.logout(principal, ip=client_ip(request))
    response = Response(status_code=204)
    _clear_cookie(response)
    return response


@router.get("/me", response_model=MeOut)
async def me(principal: PrincipalDep) -> MeOut:
    """The account of the caller."""
    return MeOut.of(principal.user)


@router.patch("/me", response_model=MeOut)
async def update_me(body: ProfileIn, principal: PrincipalDep, services: ServicesDep) -> MeOut:
    """Edit the display name or avatar."""
    user = await services.auth.update_profile(
        principal.user, display_name=body.display_name, avatar_url=body.avatar_url
    )
    return MeOut.of(user)


@router.delete("/me", status_code=204)
async def delete_me(
    body: DeleteAccountIn, principal: PrincipalDep, request: Request, services: ServicesDep
) -> Response:
    """Delete the account. The profile is anonymised ("Deleted user") and every session
    ends; messages already sent stay in their conversations so history keeps its order."""
    await services.auth.delete_account(principal, body.password, ip=client_ip(request))
    response = Response(status_code=204)
    _clear_cookie(response)
    return response


@router.get("/sessions", response_model=list[SessionOut])
async def sessions(principal: PrincipalDep, services: ServicesDep) -> list[SessionOut]:
    """The caller's active sessions (device, IP, last seen), newest activity first."""
    found = await services.store.list_sessions(principal.user.id)
    return [SessionOut.of(s, principal.session.id) for s in found]


@router.delete("/sessions/{session_id}", status_code=204)
async def revoke_session(
    session_id: str, principal: PrincipalDep, request: Request, services: ServicesDep
) -> Response:
    """End one of the caller's sessions."""
    await services.auth.revoke_session(principal.user.id, session_id, ip=client_ip(request))
    return Response(status_code=204)


@router.delete("/sessions", status_code=204)
async def revoke_all_sessions(
    principal: PrincipalDep, request: Request, services: ServicesDep
) -> Response:
    """Log out everywhere, this session included."""
    await services.auth.revoke_all(principal.user.id, ip=client_ip(request))
    response = Response(status_code=204)
    _clear_cookie(response)
    return response


@router.post("/password", status_code=204)
async def change_password(
    body: PasswordChangeIn, principal: PrincipalDep, request: Request, services: ServicesDep
) -> Response:
    """Change the password; every other session ends."""
    await services.auth.change_password(
        principal, body.current_password, body.new_password, ip=client_ip(request)
    )
    return Response(status_code=204)


@router.post("/password/forgot", status_code=202)
async def forgot_password(
    body: PasswordResetRequestIn, request: Request, services: ServicesDep
) -> dict[str, str]:
    """Mail a single-use reset code. Answers the same whether or not the address is known."""
    await services.auth.request_password_reset(body.email, ip=client_ip(request))
    return {"status": "if the address belongs to an account, a reset code was sent"}


@router.post("/password/reset", status_code=204)
async def reset_password(
    body: PasswordResetIn, request: Request, services: ServicesDep
) -> Response:
    """Set a new password with a reset code; every session of the account ends."""
    await services.auth.reset_password(body.token, body.new_password, ip=client_ip(request))
    return Response(status_code=204)
