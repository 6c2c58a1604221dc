"""``/api/users``: look people up."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from palaver.core.errors import not_found
from palaver.http.deps import PrincipalDep, ServicesDep
from palaver.http.schemas import ERROR_RESPONSES, UserOut

router = APIRouter(prefix="/api/users", tags=["users"], responses=ERROR_RESPONSES)


@router.get("/search", response_model=list[UserOut])
async def search_users(
    principal: PrincipalDep,
    services: ServicesDep,
    query: Annotated[str, Query(min_length=1, max_length=64)],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> list[UserOut]:
    """Active users whose username, display name or e-mail starts with ``query``."""
    found = await services.store.search_users(query.strip(), limit=limit, offset=offset)
    return [UserOut.of(u) for u in found]


@router.get("/{user_id}", response_model=UserOut)
async def get_user(user_id: int, principal: PrincipalDep, services: ServicesDep) -> UserOut:
    """A user's public profile."""
    user = await services.store.get_user(user_id)
    if user is None:
        raise not_found("user")
    return UserOut.of(user)
