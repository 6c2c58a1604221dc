"""``GET /api/search``: full-text search over the caller's conversations."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.search import MAX_LIMIT, MAX_QUERY_LENGTH, hit_dict
from palaver.http.deps import PrincipalDep, ServicesDep
from palaver.http.schemas import ERROR_RESPONSES

router = APIRouter(prefix="/api/search", tags=["search"], responses=ERROR_RESPONSES)


class SegmentOut(BaseModel):
    text: str
    match: bool = Field(description="true for the parts that matched the query")


class SearchHitOut(BaseModel):
    message_id: int
    conversation_id: int
    seq: int
    sender_id: int | None
    sender: str | None
    sender_name: str | None
    kind: str
    content: str
    created_at: int = Field(description="milliseconds since the epoch")
    highlights: list[tuple[int, int]] = Field(
        description="[start, end) of each match in `content`, in Unicode code points"
    )
    snippet: list[SegmentOut] = Field(
        description="an excerpt around the first match, as plain-text segments to render "
        "as text (never as HTML)"
    )


class SearchOut(BaseModel):
    results: list[SearchHitOut] = Field(description="newest first")
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next (older) page; null on the last page"
    )


@router.get("", response_model=SearchOut)
async def search(
    principal: PrincipalDep,
    services: ServicesDep,
    q: Annotated[
        str,
        Query(
            max_length=MAX_QUERY_LENGTH,
            description="words that must all occur (any order, any case, any accents); at "
            "least one of 3 characters or more, else QUERY_TOO_SHORT; missing: "
            "VALIDATION_ERROR",
        ),
    ],
    conversation_id: Annotated[
        int | None, Query(description="only this conversation (NOT_FOUND unless a member)")
    ] = None,
    sender_id: Annotated[int | None, Query(description="only messages of this user")] = None,
    after: Annotated[
        int | None, Query(ge=0, description="created at or after (ms since the epoch)")
    ] = None,
    before: Annotated[
        int | None, Query(ge=0, description="created before (ms since the epoch)")
    ] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = 20,
    cursor: Annotated[
        str | None, Query(max_length=32, description="`next_cursor` of the previous page")
    ] = None,
) -> SearchOut:
    """Messages of the caller's conversations that contain every word of ``q``:
    substrings from 3 characters, URLs, file names and code identifiers, case and
    accents folded. Messages become searchable within about a second of being sent.
    At most 30 searches in a burst, then three a second (429 ``RATE_LIMITED``)."""
    try:
        page = await services.search.search(
            principal.user.id,
            q,
            conversation_id=conversation_id,
            sender_id=sender_id,
            after=after,
            before=before,
            limit=limit,
            cursor=cursor,
        )
    except PalaverError as exc:
        # The socket's INVALID_FORMAT is, over REST, a malformed query parameter like
        # any other: VALIDATION_ERROR (422) with its field, as for a missing `q`.
        if exc.code is not ErrorCode.INVALID_FORMAT:
            raise
        raise PalaverError(ErrorCode.VALIDATION_ERROR, exc.message, field=exc.field) from exc
    return SearchOut.model_validate(
        {"results": [hit_dict(h) for h in page.hits], "next_cursor": page.next_cursor}
    )
