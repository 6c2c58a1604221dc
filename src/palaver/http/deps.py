"""FastAPI dependencies: the process's services, the caller, the client address."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from palaver.core.errors import ErrorCode, PalaverError
from palaver.services.auth import Principal
from palaver.services.container import Services
from palaver.services.tokens import bearer_from_header


def get_services(request: Request) -> Services:
    services: Services = request.app.state.services
    return services


def bearer_token(request: Request) -> str | None:
    """The token of an ``Authorization: Bearer`` header, if any."""
    return bearer_from_header(request.headers.get("authorization"))


async def get_principal(
    request: Request, services: Annotated[Services, Depends(get_services)]
) -> Principal:
    token = bearer_token(request)
    if token is None:
        raise PalaverError(ErrorCode.UNAUTHORIZED, "an Authorization: Bearer token is required")
    principal = await services.auth.authenticate(token)
    request.state.principal = principal
    return principal


async def get_admin(principal: Annotated[Principal, Depends(get_principal)]) -> Principal:
    if not principal.user.is_admin:
        raise PalaverError(ErrorCode.FORBIDDEN, "server administrators only")
    return principal


def client_ip(request: Request) -> str:
    """The client address (already resolved through trusted proxies by middleware)."""
    return request.client.host if request.client else ""


ServicesDep = Annotated[Services, Depends(get_services)]
PrincipalDep = Annotated[Principal, Depends(get_principal)]
AdminDep = Annotated[Principal, Depends(get_admin)]
