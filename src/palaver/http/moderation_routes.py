"""REST side of moderation and safety: kick, ban, mute, roles, invites, word filters,
blocks, direct-message privacy, notification settings and message reports; and the
server administrators' audit log, report queue and account switches (``/api/admin``).

Rules live in :mod:`palaver.services.moderation`, shared with the socket.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query, Request, Response
from pydantic import BaseModel, Field

from palaver.core import events
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Role
from palaver.core.moderation import NotifyLevel, member_state, notifications
from palaver.core.moderation_commands import MAX_DURATION, MAX_INVITE_USES
from palaver.http.deps import AdminDep, PrincipalDep, ServicesDep, client_ip
from palaver.http.schemas import ERROR_RESPONSES, Strict
from palaver.services.moderation import ban_out, invite_out, report_out

router = APIRouter(tags=["moderation"], responses=ERROR_RESPONSES)
admin_router = APIRouter(prefix="/api/admin", tags=["admin"], responses=ERROR_RESPONSES)

Seconds = Annotated[
    int | None, Field(None, ge=1, le=MAX_DURATION, description="seconds; omit for no end")
]


# -- bodies ---------------------------------------------------------------------------


class BanIn(Strict):
    user_id: int
    duration: Seconds = None
    reason: str | None = Field(None, max_length=256)


class MuteIn(Strict):
    duration: Seconds = None


class RoleIn(Strict):
    role: Role


class InviteIn(Strict):
    duration: Seconds = None
    max_uses: int | None = Field(None, ge=1, le=MAX_INVITE_USES)


class FilterIn(Strict):
    words: list[str] = Field(default_factory=list, max_length=1000)
    action: Literal["mask", "reject"] | None = Field(None, description="null: the server's action")


class NotificationsIn(Strict):
    level: NotifyLevel | None = None
    mute: bool | Annotated[int, Field(ge=1, le=MAX_DURATION)] | None = Field(
        None, description="true: mute for ever; seconds: for a time; false: unmute"
    )


class PrivacyIn(Strict):
    dm_policy: Literal["everyone", "contacts"]


class ReportIn(Strict):
    reason: str = Field("", max_length=512)


class ResolveIn(Strict):
    resolution: str = Field(
        "resolved",
        min_length=1,
        max_length=256,
        description="what was done (for instance `warned`, `deleted`, `no action`)",
    )


# -- answers --------------------------------------------------------------------------


class MemberStateOut(BaseModel):
    user_id: int
    role: str
    muted: bool
    muted_until: int | None = Field(None, description="null while muted: for ever")


class BanOut(BaseModel):
    conversation_id: int
    user_id: int
    until: int | None
    banned_by: int | None
    at: int
    reason: str | None


class InviteOut(BaseModel):
    code: str
    conversation_id: int
    created_by: int | None
    created_at: int
    expires_at: int | None
    max_uses: int | None
    uses: int
    revoked: bool


class JoinedOut(BaseModel):
    conversation: dict[str, Any]
    joined: bool


class FilterOut(BaseModel):
    conversation_id: int
    words: list[str]
    action: str | None
    effective_action: str


class NotificationsOut(BaseModel):
    conversation_id: int
    level: str
    muted: bool
    muted_until: int | None


class BlockOut(BaseModel):
    user_id: int
    created_at: int


class PrivacyOut(BaseModel):
    dm_policy: str


class ReportOut(BaseModel):
    id: int
    message_id: int
    conversation_id: int
    reporter_id: int
    reason: str
    created_at: int
    resolved_at: int | None
    resolved_by: int | None
    resolution: str | None


class AuditOut(BaseModel):
    id: int
    at: int
    action: str
    actor_id: int | None
    target: str | None
    ip: str | None
    details: dict[str, Any]


class AuditPageOut(BaseModel):
    events: list[AuditOut]
    next_before: int | None = Field(None, description="pass as `before` for the next page")


class ReportPageOut(BaseModel):
    reports: list[ReportOut]
    next_before: int | None


class AccountOut(BaseModel):
    id: int
    is_active: bool


# -- conversation moderation -------------------------------------------------------------


@router.post("/api/conversations/{conversation_id}/members/{user_id}/kick", status_code=204)
async def kick(
    conversation_id: int, user_id: int, principal: PrincipalDep, services: ServicesDep
) -> Response:
    """Remove a member (owners and admins); they may rejoin a public room."""
    await services.moderation.kick(principal.user, conversation_id, user_id)
    return Response(status_code=204)


@router.post("/api/conversations/{conversation_id}/bans", status_code=201, response_model=BanOut)
async def ban(
    conversation_id: int, body: BanIn, principal: PrincipalDep, services: ServicesDep
) -> BanOut:
    """Remove a member and keep them out (joins, adds, invites answer ``BANNED``)
    until ``duration`` seconds have passed, or until lifted."""
    found = await services.moderation.ban(
        principal.user, conversation_id, body.user_id, duration=body.duration, reason=body.reason
    )
    return BanOut(**ban_out(found))


@router.get("/api/conversations/{conversation_id}/bans", response_model=list[BanOut])
async def list_bans(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> list[BanOut]:
    """The bans in force, newest first (an expired ban no longer applies)."""
    found = await services.moderation.bans(principal.user, conversation_id)
    return [BanOut(**ban_out(b)) for b in found]


@router.delete("/api/conversations/{conversation_id}/bans/{user_id}", status_code=204)
async def unban(
    conversation_id: int, user_id: int, principal: PrincipalDep, services: ServicesDep
) -> Response:
    await services.moderation.unban(principal.user, conversation_id, user_id)
    return Response(status_code=204)


@router.put(
    "/api/conversations/{conversation_id}/members/{user_id}/mute", response_model=MemberStateOut
)
async def mute(
    conversation_id: int,
    user_id: int,
    body: MuteIn,
    principal: PrincipalDep,
    services: ServicesDep,
) -> MemberStateOut:
    """Mute a member: they still read, their sends answer ``MUTED``, even after
    leaving (or being kicked or banned) and coming back."""
    member = await services.moderation.mute(
        principal.user, conversation_id, user_id, duration=body.duration
    )
    return MemberStateOut(user_id=user_id, role=member.role.value, **member_state(member))


@router.delete(
    "/api/conversations/{conversation_id}/members/{user_id}/mute", response_model=MemberStateOut
)
async def unmute(
    conversation_id: int, user_id: int, principal: PrincipalDep, services: ServicesDep
) -> MemberStateOut:
    """Lift a member's mute (a mute outlives leaving, kicks and bans)."""
    member = await services.moderation.unmute(principal.user, conversation_id, user_id)
    return MemberStateOut(user_id=user_id, role=member.role.value, **member_state(member))


@router.put(
    "/api/conversations/{conversation_id}/members/{user_id}/role", response_model=MemberStateOut
)
async def set_role(
    conversation_id: int,
    user_id: int,
    body: RoleIn,
    principal: PrincipalDep,
    services: ServicesDep,
) -> MemberStateOut:
    """Promote or demote a member (the owner; server admins too); ``owner`` hands
    ownership on and makes the old owner an admin."""
    member = await services.moderation.set_role(principal.user, conversation_id, user_id, body.role)
    return MemberStateOut(user_id=user_id, role=member.role.value, **member_state(member))


# -- invites ---------------------------------------------------------------------------------


@router.post(
    "/api/conversations/{conversation_id}/invites", status_code=201, response_model=InviteOut
)
async def create_invite(
    conversation_id: int, body: InviteIn, principal: PrincipalDep, services: ServicesDep
) -> InviteOut:
    """An invite link with an optional lifetime and use limit (owners, admins)."""
    invite = await services.moderation.create_invite(
        principal.user, conversation_id, duration=body.duration, max_uses=body.max_uses
    )
    return InviteOut(**invite_out(invite))


@router.get("/api/conversations/{conversation_id}/invites", response_model=list[InviteOut])
async def list_invites(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> list[InviteOut]:
    found = await services.moderation.invites(principal.user, conversation_id)
    return [InviteOut(**invite_out(i)) for i in found]


@router.delete("/api/invites/{code}", status_code=204)
async def revoke_invite(code: str, principal: PrincipalDep, services: ServicesDep) -> Response:
    await services.moderation.revoke_invite(principal.user, code)
    return Response(status_code=204)


@router.post("/api/invites/{code}/join", response_model=JoinedOut)
async def join_invite(code: str, principal: PrincipalDep, services: ServicesDep) -> JoinedOut:
    """Join a room or group through a link; unknown, expired, revoked and used-up codes
    all answer ``NOT_FOUND``."""
    conversation, joined = await services.moderation.join_by_invite(principal.user, code)
    count = await services.store.count_members(conversation.id)
    return JoinedOut(conversation=events.conversation(conversation, count), joined=joined)


# -- filter and notifications -----------------------------------------------------------


@router.get("/api/conversations/{conversation_id}/filter", response_model=FilterOut)
async def get_filter(
    conversation_id: int, principal: PrincipalDep, services: ServicesDep
) -> FilterOut:
    return FilterOut(**await services.moderation.get_filter(principal.user, conversation_id))


@router.put("/api/conversations/{conversation_id}/filter", response_model=FilterOut)
async def set_filter(
    conversation_id: int, body: FilterIn, principal: PrincipalDep, services: ServicesDep
) -> FilterOut:
    """The conversation's own words (added to the server's) and action (owners, admins)."""
    got = await services.moderation.set_filter(
        principal.user, conversation_id, body.words, body.action
    )
    return FilterOut(**got)


@router.put("/api/conversations/{conversation_id}/notifications", response_model=NotificationsOut)
async def set_notifications(
    conversation_id: int, body: NotificationsIn, principal: PrincipalDep, services: ServicesDep
) -> NotificationsOut:
    """The caller's own notification settings for the conversation."""
    member = await services.moderation.set_notifications(
        principal.user, conversation_id, level=body.level, mute=body.mute
    )
    return NotificationsOut(conversation_id=conversation_id, **notifications(member))


# -- blocks, privacy, reports -------------------------------------------------------------


@router.post("/api/users/{user_id}/block", status_code=204)
async def block(user_id: int, principal: PrincipalDep, services: ServicesDep) -> Response:
    """They can no longer message you directly nor see your presence."""
    await services.moderation.block(principal.user, user_id)
    return Response(status_code=204)


@router.delete("/api/users/{user_id}/block", status_code=204)
async def unblock(user_id: int, principal: PrincipalDep, services: ServicesDep) -> Response:
    await services.moderation.unblock(principal.user, user_id)
    return Response(status_code=204)


@router.get("/api/users/me/blocks", response_model=list[BlockOut])
async def list_blocks(principal: PrincipalDep, services: ServicesDep) -> list[BlockOut]:
    found = await services.moderation.blocks(principal.user)
    return [BlockOut(user_id=uid, created_at=at) for uid, at in found]


@router.get("/api/users/me/privacy", response_model=PrivacyOut)
async def get_privacy(principal: PrincipalDep, services: ServicesDep) -> PrivacyOut:
    return PrivacyOut(dm_policy=await services.moderation.dm_policy(principal.user))


@router.put("/api/users/me/privacy", response_model=PrivacyOut)
async def set_privacy(
    body: PrivacyIn, principal: PrincipalDep, services: ServicesDep
) -> PrivacyOut:
    """Who may start a direct conversation with you: ``everyone`` or ``contacts``
    (people who share a conversation with you)."""
    policy = await services.moderation.set_dm_policy(principal.user, body.dm_policy)
    return PrivacyOut(dm_policy=policy)


@router.post("/api/messages/{message_id}/report", status_code=201, response_model=ReportOut)
async def report(
    message_id: int, body: ReportIn, principal: PrincipalDep, services: ServicesDep
) -> ReportOut:
    """Report a message to the server admins (members of its conversation only)."""
    filed = await services.moderation.report(principal.user, message_id, body.reason)
    return ReportOut(**report_out(filed))


# -- server administration -------------------------------------------------------------------


@admin_router.get("/audit", response_model=AuditPageOut)
async def audit(
    principal: AdminDep,
    services: ServicesDep,
    before: Annotated[int | None, Query(ge=1, description="events older than this id")] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
    action: Annotated[
        str | None, Query(max_length=64, description="exact, or a prefix ending in *")
    ] = None,
    actor_id: Annotated[int | None, Query(ge=0)] = None,
    target: Annotated[str | None, Query(max_length=256)] = None,
    since: Annotated[int | None, Query(ge=0, description="ms since the epoch, inclusive")] = None,
    until: Annotated[int | None, Query(ge=0, description="ms since the epoch, exclusive")] = None,
) -> AuditPageOut:
    """The audit log, newest first (server administrators only)."""
    found = await services.store.search_audit(
        limit=limit,
        before_id=before,
        action=action,
        actor_id=actor_id,
        target=target,
        since=since,
        until=until,
    )
    return AuditPageOut(
        events=[
            AuditOut(
                id=e.id,
                at=e.at,
                action=e.action,
                actor_id=e.actor_id,
                target=e.target,
                ip=e.ip,
                details=e.details,
            )
            for e in found
        ],
        next_before=found[-1].id if len(found) == limit else None,
    )


@admin_router.get("/reports", response_model=ReportPageOut)
async def reports(
    principal: AdminDep,
    services: ServicesDep,
    state: Literal["open", "all"] = "open",
    before: Annotated[int | None, Query(ge=1)] = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> ReportPageOut:
    """The report queue, newest first."""
    found = await services.store.list_reports(
        open_only=state == "open", before_id=before, limit=limit
    )
    return ReportPageOut(
        reports=[ReportOut(**report_out(r)) for r in found],
        next_before=found[-1].id if len(found) == limit else None,
    )


@admin_router.post("/reports/{report_id}/resolve", response_model=ReportOut)
async def resolve_report(
    report_id: int, principal: AdminDep, services: ServicesDep, body: ResolveIn | None = None
) -> ReportOut:
    """Close an open report. The body is optional: ``resolution`` defaults to
    ``resolved``. A report already closed, or none, is ``NOT_FOUND``."""
    resolution = body.resolution if body is not None else ResolveIn().resolution
    resolved = await services.moderation.resolve_report(principal.user, report_id, resolution)
    return ReportOut(**report_out(resolved))


@admin_router.post("/users/{user_id}/deactivate", response_model=AccountOut)
async def deactivate(
    user_id: int, request: Request, principal: AdminDep, services: ServicesDep
) -> AccountOut:
    """Deactivate an account: its sessions end and its sockets close at once, on
    every node."""
    if user_id == principal.user.id:
        raise PalaverError(ErrorCode.VALIDATION_ERROR, "you cannot deactivate yourself")
    user = await services.auth.set_active(
        user_id, False, actor_id=principal.user.id, ip=client_ip(request)
    )
    return AccountOut(id=user.id, is_active=user.is_active)


@admin_router.post("/users/{user_id}/reactivate", response_model=AccountOut)
async def reactivate(
    user_id: int, request: Request, principal: AdminDep, services: ServicesDep
) -> AccountOut:
    user = await services.auth.set_active(
        user_id, True, actor_id=principal.user.id, ip=client_ip(request)
    )
    return AccountOut(id=user.id, is_active=user.is_active)
