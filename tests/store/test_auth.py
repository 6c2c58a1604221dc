"""Sessions, rotating refresh tokens, password resets and the audit log."""

from __future__ import annotations

import pytest

from palaver.core.errors import ErrorCode, PalaverError
from palaver.store.base import RefreshOutcome
from palaver.store.sql import SqlStore

from .helpers import DAY, T0, session, user


async def test_create_and_get_session(store: SqlStore) -> None:
    alice = await user(store, "alice")
    created = session(alice.id, "s1")
    await store.create_session(created, "r1")
    assert await store.get_session("s1") == created
    assert await store.get_session("nope") is None


async def test_duplicate_session_id_conflicts(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_session(session(alice.id, "s1"), "r1")
    with pytest.raises(PalaverError) as caught:
        await store.create_session(session(alice.id, "s1"), "r2")
    assert caught.value.code is ErrorCode.CONFLICT
    assert caught.value.field == "id"


async def test_session_for_missing_user_is_not_found(store: SqlStore) -> None:
    with pytest.raises(PalaverError) as caught:
        await store.create_session(session(999, "s1"), "r1")
    assert caught.value.code is ErrorCode.NOT_FOUND


async def test_list_sessions(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    await store.create_session(session(alice.id, "old", at=T0 - 10), "r1")
    await store.create_session(session(alice.id, "new", at=T0), "r2")
    await store.create_session(session(alice.id, "expired", expires_at=T0 - DAY), "r3")
    await store.create_session(session(alice.id, "revoked"), "r4")
    await store.create_session(session(bob.id, "bobs"), "r5")
    await store.revoke_session("revoked", T0)
    assert [s.id for s in await store.list_sessions(alice.id)] == ["new", "old"]
    everything = await store.list_sessions(alice.id, active_only=False)
    assert {s.id for s in everything} == {"old", "new", "expired", "revoked"}


async def test_touch_session(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_session(session(alice.id, "s1"), "r1")
    await store.touch_session("s1", T0 + 5)
    touched = await store.get_session("s1")
    assert touched is not None
    assert (touched.last_seen_at, touched.ip) == (T0 + 5, "127.0.0.1")
    await store.touch_session("s1", T0 + 9, ip="10.0.0.1")
    touched = await store.get_session("s1")
    assert touched is not None
    assert (touched.last_seen_at, touched.ip) == (T0 + 9, "10.0.0.1")
    await store.touch_session("unknown", T0)  # no error


async def test_revoke_session(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_session(session(alice.id, "s1"), "r1")
    assert await store.revoke_session("s1", T0 + 1) is True
    assert await store.revoke_session("s1", T0 + 2) is False
    assert await store.revoke_session("unknown", T0) is False
    revoked = await store.get_session("s1")
    assert revoked is not None
    assert revoked.revoked_at == T0 + 1


async def test_revoke_user_sessions(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    for sid in ("a1", "a2", "a3"):
        await store.create_session(session(alice.id, sid), sid)
    await store.create_session(session(bob.id, "b1"), "b1")
    await store.revoke_session("a3", T0)
    assert await store.revoke_user_sessions(alice.id, T0 + 1, except_session="a1") == ["a2"]
    assert await store.revoke_user_sessions(alice.id, T0 + 2) == ["a1"]
    assert await store.revoke_user_sessions(alice.id, T0 + 3) == []
    bobs = await store.get_session("b1")
    assert bobs is not None
    assert bobs.revoked_at is None


async def test_refresh_rotation(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_session(session(alice.id, "s1"), "r1")
    result = await store.rotate_refresh_token("r1", "r2", T0 + 10, T0 + 2 * DAY)
    assert result.outcome is RefreshOutcome.OK
    assert result.session is not None
    assert (result.session.id, result.session.expires_at) == ("s1", T0 + 2 * DAY)
    assert result.session.last_seen_at == T0 + 10
    again = await store.rotate_refresh_token("r2", "r3", T0 + 20, T0 + 3 * DAY)
    assert again.outcome is RefreshOutcome.OK


async def test_refresh_reuse_revokes_the_session(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_session(session(alice.id, "s1"), "r1")
    await store.rotate_refresh_token("r1", "r2", T0 + 1, T0 + DAY)
    reused = await store.rotate_refresh_token("r1", "x", T0 + 2, T0 + DAY)
    assert reused.outcome is RefreshOutcome.REUSED
    assert reused.session is not None
    assert reused.session.revoked_at == T0 + 2
    # The legitimate newest token dies with its family.
    after = await store.rotate_refresh_token("r2", "r3", T0 + 3, T0 + DAY)
    assert after.outcome is RefreshOutcome.REVOKED


async def test_refresh_unknown_revoked_and_expired(store: SqlStore) -> None:
    alice = await user(store, "alice")
    unknown = await store.rotate_refresh_token("nope", "x", T0, T0 + DAY)
    assert unknown.outcome is RefreshOutcome.UNKNOWN
    assert unknown.session is None

    await store.create_session(session(alice.id, "s1"), "r1")
    await store.revoke_session("s1", T0)
    revoked = await store.rotate_refresh_token("r1", "r2", T0 + 1, T0 + DAY)
    assert revoked.outcome is RefreshOutcome.REVOKED

    await store.create_session(session(alice.id, "s2", expires_at=T0 + 5), "t1")
    expired = await store.rotate_refresh_token("t1", "t2", T0 + 5, T0 + DAY)
    assert expired.outcome is RefreshOutcome.REVOKED
    assert expired.session is not None
    assert expired.session.id == "s2"


async def test_password_reset_single_use(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_password_reset("h1", alice.id, T0, T0 + 1000)
    assert await store.consume_password_reset("h1", T0 + 1) == alice.id
    assert await store.consume_password_reset("h1", T0 + 2) is None
    assert await store.consume_password_reset("unknown", T0) is None


async def test_password_reset_expires(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.create_password_reset("h1", alice.id, T0, T0 + 1000)
    assert await store.consume_password_reset("h1", T0 + 1000) is None


async def test_audit_log(store: SqlStore) -> None:
    alice = await user(store, "alice")
    await store.add_audit("login", at=T0, actor_id=alice.id, ip="1.2.3.4")
    await store.add_audit(
        "kick", at=T0 + 1, actor_id=alice.id, target="user:2", details={"reason": "spam", "n": 2}
    )
    await store.add_audit("login", at=T0 + 2)
    events = await store.list_audit()
    assert [e.action for e in events] == ["login", "kick", "login"]
    kick = events[1]
    assert (kick.at, kick.actor_id, kick.target, kick.ip) == (T0 + 1, alice.id, "user:2", None)
    assert kick.details == {"reason": "spam", "n": 2}
    assert events[0].details == {}
    assert [e.id for e in await store.list_audit(before_id=events[0].id, limit=1)] == [kick.id]
    assert [e.at for e in await store.list_audit(action="login")] == [T0 + 2, T0]
    assert [e.action for e in await store.list_audit(actor_id=alice.id)] == ["kick", "login"]
