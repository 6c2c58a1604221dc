"""Accounts and sessions: register, log in, refresh, log out, passwords, profiles.

Every outcome that matters for security goes to the audit trail; every way to close a
session also tells the broker, so that user's open sockets close at once on every node.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import structlog
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from palaver.broker.base import Broker, Reservation
from palaver.config import Settings
from palaver.core import accounts
from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import Session, User, now_ms
from palaver.services import signals
from palaver.services.audit import Audit
from palaver.services.mail import Mailer, MailUnavailable
from palaver.services.tokens import (
    TokenService,
    hash_opaque_token,
    new_opaque_token,
    new_session_id,
)
from palaver.store.base import Anonymised, RefreshOutcome, Store

log = structlog.get_logger(__name__)

# OWASP's argon2id recommendation (19 MiB, 2 passes, 1 lane): strong, and ~20 ms here,
# so a login burst does not starve the event loop's worker threads.
HASHER = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1)
# Verified against when the account does not exist, so timing does not reveal it.
_DUMMY_HASH = HASHER.hash("palaver-timing-equaliser")


@dataclass(frozen=True, slots=True)
class Principal:
    """The authenticated caller of a request or socket."""

    user: User
    session: Session
    token_expires_at: int


@dataclass(frozen=True, slots=True)
class LoginResult:
    access_token: str
    refresh_token: str
    expires_in: int
    user: User
    session: Session


async def hash_password(password: str) -> str:
    return await asyncio.to_thread(HASHER.hash, password)


async def verify_password(password_hash: str, password: str) -> bool:
    def check() -> bool:
        try:
            return HASHER.verify(password_hash, password)
        except (VerifyMismatchError, VerificationError, InvalidHashError):
            return False

    return await asyncio.to_thread(check)


def _too_many(what: str, wait: float) -> PalaverError:
    return PalaverError(
        ErrorCode.RATE_LIMITED,
        f"too many {what}; try again later",
        retry_after=float(math.ceil(wait)),
    )


class AuthService:
    """Use cases of accounts and sessions over a :class:`Store` and a :class:`Broker`."""

    def __init__(
        self,
        settings: Settings,
        store: Store,
        broker: Broker,
        tokens: TokenService,
        audit: Audit,
        mailer: Mailer,
    ) -> None:
        self.settings = settings
        self.store = store
        self.broker = broker
        self.tokens = tokens
        self.audit = audit
        self.mailer = mailer
        #: Removes a deleted account's files (the upload service).
        self.remove_files: Callable[[int], Awaitable[object]] | None = None
        #: Tells a deleted account's conversations what changed (the conversations).
        self.account_deleted: Callable[[int, Anonymised], Awaitable[object]] | None = None

    # -- registration and login ------------------------------------------------------

    async def register(
        self,
        *,
        username: str | None,
        email: str | None,
        password: str,
        display_name: str | None = None,
        ip: str | None = None,
        is_admin: bool = False,
        bypass_closed: bool = False,
    ) -> User:
        """Create an account; at least one of ``username`` and ``email`` is required."""
        if not self.settings.registration_open and not bypass_closed:
            raise PalaverError(ErrorCode.REGISTRATION_CLOSED, "registration is closed")
        if not username and not email:
            raise PalaverError(
                ErrorCode.VALIDATION_ERROR,
                "username or email is required",
                field="username",
            )
        name = accounts.normalise_username(username) if username else None
        mail = accounts.normalise_email(email) if email else None
        accounts.check_password(
            password,
            min_length=self.settings.password_min_length,
            require_classes=self.settings.password_require_classes,
        )
        display = accounts.normalise_display_name(display_name, name or (mail or "").split("@")[0])
        user = await self.store.create_user(
            username=name,
            email=mail,
            display_name=display,
            password_hash=await hash_password(password),
            is_admin=is_admin,
        )
        await self.audit.record("user.registered", actor_id=user.id, target=str(user.id), ip=ip)
        return user

    def _account_counter(self, account: str) -> tuple[str, int]:
        """The failure counter of an account and its limit. Every route that checks the
        account's password counts in it, so guesses through any of them add up."""
        return f"login:acct:{account}", self.settings.login_max_failures

    async def _throttle_keys(
        self, login: str, ip: str | None, user: User | None
    ) -> list[tuple[str, int]]:
        """The failure counters of a login attempt and the limit of each: the account's
        (strict) first, then the client address's (looser, as many people may share it).
        An existing account is counted by its id, so its username and its e-mail address
        share one counter."""
        account = f"user:{user.id}" if user is not None else login.strip().lower()
        keys = [self._account_counter(account)]
        if ip:
            keys.append((f"login:ip:{ip}", self.settings.login_ip_max_failures))
        return keys

    async def _reserve(self, counters: list[tuple[str, int]]) -> tuple[list[Reservation], float]:
        """Take an attempt's place in every counter before its password is checked.

        Return the places, one per counter, and 0.0 when each counter took it; else none
        and the seconds until the window of the first full one ends, with nothing held.
        Only a right password gives a place back (:meth:`_give_back`), so however many
        attempts race, on any number of nodes, at most each counter's limit of them are
        checked in one window."""
        reserved: list[Reservation] = []
        for key, limit in counters:
            reservation = await self.broker.reserve_hit(
                key, limit, self.settings.login_failure_window
            )
            if reservation.window is None:
                await self._give_back(reserved)
                return [], reservation.wait
            reserved.append(reservation)
        return reserved, 0.0

    async def login(
        self, login: str, password: str, *, ip: str | None = None, device: str = ""
    ) -> LoginResult:
        """Check credentials and open a session. Too many failures of the account
        (``login_max_failures``) or from the client IP (``login_ip_max_failures``, higher)
        within the window answer ``RATE_LIMITED`` before any password check (see
        :meth:`_reserve`)."""
        user = await self.store.get_user_by_login(login.strip())
        keys = await self._throttle_keys(login, ip, user)
        reserved, wait = await self._reserve(keys)
        if wait > 0:
            await self.audit.record("login.throttled", target=login[:256], ip=ip)
            raise _too_many("failed logins", wait)
        ok = await verify_password(user.password_hash if user else _DUMMY_HASH, password)
        if user is None or not ok:
            # The reservations stand: they are this failure's count.
            await self.audit.record(
                "login.failed",
                actor_id=user.id if user else None,
                target=login[:256],
                ip=ip,
            )
            raise PalaverError(ErrorCode.INVALID_CREDENTIALS, "invalid login or password")
        if not user.is_active:
            await self._give_back(reserved)
            await self.audit.record("login.refused_inactive", actor_id=user.id, ip=ip)
            raise PalaverError(ErrorCode.ACCOUNT_DISABLED, "this account is deactivated")
        # A success clears the account's failures; the address keeps its others.
        await self.broker.reset_count(keys[0][0])
        await self._give_back(reserved[1:])
        result = await self.open_session(user, ip=ip, device=device)
        await self.audit.record(
            "login.succeeded", actor_id=user.id, target=result.session.id, ip=ip
        )
        return result

    async def _check_own_password(self, user: User, password: str, *, ip: str | None) -> bool:
        """Whether ``password`` is the signed-in ``user``'s, checked as a login attempt.

        A stolen access token must give no more guesses than the login form: a wrong
        password here is a failure in the account's login counter, a right one clears
        it, and a full counter answers ``RATE_LIMITED`` before any check."""
        counter = self._account_counter(f"user:{user.id}")
        _, wait = await self._reserve([counter])
        if wait > 0:
            await self.audit.record("password.throttled", actor_id=user.id, ip=ip)
            raise _too_many("wrong passwords", wait)
        if not await verify_password(user.password_hash, password):
            return False  # the reservation stands: it is this failure's count
        await self.broker.reset_count(counter[0])
        return True

    async def _give_back(self, reserved: list[Reservation]) -> None:
        """Release the reservations of an attempt that was no failure. One whose window
        ended during the check gives nothing back to the window open now."""
        for reservation in reserved:
            await self.broker.release_hit(reservation)

    async def open_session(self, user: User, *, ip: str | None, device: str) -> LoginResult:
        """Create a session with its first refresh token and an access token."""
        now = now_ms()
        session = Session(
            id=new_session_id(),
            user_id=user.id,
            created_at=now,
            last_seen_at=now,
            expires_at=now + self.settings.refresh_token_ttl * 1000,
            device=device[:256],
            ip=ip or "",
        )
        refresh = new_opaque_token()
        await self.store.create_session(session, hash_opaque_token(refresh))
        return self._result(user, session, refresh)

    def _result(self, user: User, session: Session, refresh: str) -> LoginResult:
        return LoginResult(
            access_token=self.tokens.issue(user.id, session.id),
            refresh_token=refresh,
            expires_in=self.tokens.ttl,
            user=user,
            session=session,
        )

    async def refresh(self, refresh_token: str, *, ip: str | None = None) -> LoginResult:
        """Rotate a refresh token. A token used twice revokes its whole family (the
        session), closes its sockets and is written to the audit log."""
        now = now_ms()
        new_refresh = new_opaque_token()
        result = await self.store.rotate_refresh_token(
            hash_opaque_token(refresh_token),
            hash_opaque_token(new_refresh),
            now,
            now + self.settings.refresh_token_ttl * 1000,
        )
        session = result.session
        if result.outcome is RefreshOutcome.REUSED and session is not None:
            await self.audit.record(
                "refresh.reused", actor_id=session.user_id, target=session.id, ip=ip
            )
            await signals.revoke_sessions(self.broker, session.user_id, [session.id])
        if result.outcome is not RefreshOutcome.OK or session is None:
            raise PalaverError(ErrorCode.TOKEN_INVALID, "refresh token is not valid")
        user = await self.store.get_user(session.user_id)
        if user is None or not user.is_active:
            raise PalaverError(ErrorCode.ACCOUNT_DISABLED, "this account is deactivated")
        await self.store.touch_session(session.id, now, ip)
        return self._result(user, session, new_refresh)

    # -- authenticating requests -------------------------------------------------------

    async def authenticate(self, access_token: str) -> Principal:
        """Verify an access token and that its session and user are still active."""
        claims = self.tokens.verify(access_token)
        session = await self.store.get_session(claims.session_id)
        if session is None or session.user_id != claims.user_id or not session.active:
            raise PalaverError(ErrorCode.SESSION_REVOKED, "this session has ended")
        user = await self.store.get_user(claims.user_id)
        if user is None or not user.is_active:
            raise PalaverError(ErrorCode.ACCOUNT_DISABLED, "this account is deactivated")
        return Principal(user=user, session=session, token_expires_at=claims.expires_at)

    # -- sessions ----------------------------------------------------------------------

    async def logout(self, principal: Principal, *, ip: str | None = None) -> None:
        await self.revoke_session(principal.user.id, principal.session.id, ip=ip)

    async def revoke_session(self, user_id: int, session_id: str, *, ip: str | None) -> None:
        """End one of the user's sessions; ``NOT_FOUND`` when it is not theirs."""
        session = await self.store.get_session(session_id)
        if session is None or session.user_id != user_id:
            raise PalaverError(ErrorCode.NOT_FOUND, "session not found")
        await self.store.revoke_session(session_id, now_ms())
        await self.audit.record("session.revoked", actor_id=user_id, target=session_id, ip=ip)
        await signals.revoke_sessions(self.broker, user_id, [session_id])

    async def revoke_all(
        self, user_id: int, *, except_session: str | None = None, ip: str | None = None
    ) -> list[str]:
        """Log out everywhere (but ``except_session``); return the ended session ids."""
        revoked = await self.store.revoke_user_sessions(
            user_id, now_ms(), except_session=except_session
        )
        await self.audit.record("session.revoked_all", actor_id=user_id, ip=ip, count=len(revoked))
        if revoked:
            await signals.revoke_sessions(self.broker, user_id, revoked)
        return revoked

    # -- passwords -------------------------------------------------------------------

    async def change_password(
        self, principal: Principal, current: str, new: str, *, ip: str | None = None
    ) -> None:
        """Change the password and end every other session of the user. A wrong
        ``current`` counts as a failed login of the account (``RATE_LIMITED`` past
        ``login_max_failures``)."""
        if not await self._check_own_password(principal.user, current, ip=ip):
            await self.audit.record("password.change_failed", actor_id=principal.user.id, ip=ip)
            raise PalaverError(
                ErrorCode.INVALID_CREDENTIALS,
                "current password is wrong",
                field="current_password",
            )
        self._check_policy(new)
        await self.store.update_user(principal.user.id, password_hash=await hash_password(new))
        await self.audit.record("password.changed", actor_id=principal.user.id, ip=ip)
        await self.revoke_all(principal.user.id, except_session=principal.session.id, ip=ip)

    def _check_policy(self, password: str) -> None:
        accounts.check_password(
            password,
            min_length=self.settings.password_min_length,
            require_classes=self.settings.password_require_classes,
        )

    async def request_password_reset(self, email: str, *, ip: str | None = None) -> None:
        """Mail a single-use reset link when the address belongs to an active account.

        Answers the same whether or not it does, so addresses cannot be probed.
        Raises ``UNAVAILABLE`` only when no mail server is configured at all.
        """
        if not self.mailer.configured:
            raise PalaverError(ErrorCode.UNAVAILABLE, "password reset by e-mail is not set up")
        key = f"reset:{email.strip().lower()}"
        if await self.broker.count_hit(key, 3600) > 5:
            return
        user = await self.store.get_user_by_login(email.strip().lower())
        await self.audit.record(
            "password.reset_requested",
            actor_id=user.id if user else None,
            ip=ip,
            known=user is not None,
        )
        if user is None or not user.is_active or not user.email:
            return
        token = new_opaque_token()
        now = now_ms()
        await self.store.create_password_reset(
            hash_opaque_token(token),
            user.id,
            now,
            now + self.settings.password_reset_ttl * 1000,
        )
        base = self.settings.public_url.rstrip("/") or (
            f"http://{self.settings.host}:{self.settings.port}"
        )
        minutes = self.settings.password_reset_ttl // 60
        body = (
            f"Someone asked to reset the Palaver password of {user.email}.\n\n"
            f"Reset code: {token}\n"
            f"Or open: {base}/#reset={token}\n\n"
            f"The code works once, for {minutes} minutes. If you did not ask, ignore this."
        )
        try:
            await self.mailer.send(user.email, "Reset your Palaver password", body)
        except MailUnavailable as exc:
            raise PalaverError(
                ErrorCode.UNAVAILABLE, "the mail server did not accept the message"
            ) from exc

    async def reset_password(self, token: str, new: str, *, ip: str | None = None) -> None:
        """Set a new password with a reset token and end every session of the user."""
        self._check_policy(new)
        user_id = await self.store.consume_password_reset(hash_opaque_token(token), now_ms())
        if user_id is None:
            raise PalaverError(
                ErrorCode.TOKEN_INVALID, "reset token is not valid or has expired", field="token"
            )
        await self.store.update_user(user_id, password_hash=await hash_password(new))
        await self.audit.record("password.reset", actor_id=user_id, ip=ip)
        await self.revoke_all(user_id, ip=ip)

    # -- profile and account -----------------------------------------------------------

    async def update_profile(
        self, user: User, *, display_name: str | None, avatar_url: str | None
    ) -> User:
        fields: dict[str, object] = {}
        if display_name is not None:
            fields["display_name"] = accounts.normalise_display_name(display_name, user.handle)
        if avatar_url is not None:
            if avatar_url and not avatar_url.startswith(("https://", "/api/")):
                raise PalaverError(
                    ErrorCode.VALIDATION_ERROR,
                    "avatar_url must be an https:// URL or an uploaded file",
                    field="avatar_url",
                )
            fields["avatar_url"] = avatar_url or None
        if not fields:
            return user
        updated = await self.store.update_user(user.id, **fields)
        assert updated is not None  # the caller is authenticated, so the row exists
        return updated

    async def delete_account(
        self, principal: Principal, password: str, *, ip: str | None = None
    ) -> None:
        """Anonymise the account (see :meth:`Store.anonymise_user`) after a password check,
        throttled as the account's logins are."""
        if not await self._check_own_password(principal.user, password, ip=ip):
            await self.audit.record("user.delete_failed", actor_id=principal.user.id, ip=ip)
            raise PalaverError(ErrorCode.INVALID_CREDENTIALS, "password is wrong", field="password")
        sessions = [s.id for s in await self.store.list_sessions(principal.user.id)]
        # Files first: if that fails the account is untouched and the user can retry. A
        # file still arriving meanwhile is never attached (the sessions end below) and
        # expires with the unattached ones.
        if self.remove_files is not None:
            await self.remove_files(principal.user.id)
        gone = await self.store.anonymise_user(principal.user.id, now_ms())
        await self.audit.record("user.deleted", actor_id=principal.user.id, ip=ip)
        await signals.revoke_sessions(self.broker, principal.user.id, sessions or None)
        if gone is not None and self.account_deleted is not None:
            await self.account_deleted(principal.user.id, gone)

    async def set_active(
        self, user_id: int, active: bool, *, actor_id: int | None, ip: str | None = None
    ) -> User:
        """Activate or deactivate an account; deactivation ends its sessions at once."""
        user = await self.store.update_user(user_id, is_active=active)
        if user is None:
            raise PalaverError(ErrorCode.NOT_FOUND, "user not found")
        action = "user.activated" if active else "user.deactivated"
        await self.audit.record(action, actor_id=actor_id, target=str(user_id), ip=ip)
        if not active:
            await self.revoke_all(user_id, ip=ip)
            # Every socket of the account, whatever session it was opened with.
            await signals.revoke_sessions(self.broker, user_id, None)
        return user
