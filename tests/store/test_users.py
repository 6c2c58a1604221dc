from __future__ import annotations

import pytest

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import MessageKind, Role
from palaver.core.notices import Notice
from palaver.store.sql import SqlStore

from .helpers import T0, room, send, session, user


async def test_create_and_get(store: SqlStore) -> None:
    alice = await store.create_user(
        username="Alice",
        email="Alice@Example.ORG",
        display_name="Alice A.",
        password_hash="h",
        is_admin=True,
    )
    assert alice.id > 0
    assert (alice.username, alice.email, alice.display_name) == (
        "Alice",
        "alice@example.org",
        "Alice A.",
    )
    assert alice.is_admin
    assert alice.is_active
    assert alice.deleted_at is None
    assert alice.avatar_url is None
    assert await store.get_user(alice.id) == alice
    assert await store.get_user(alice.id + 100) is None


async def test_user_without_username_or_email(store: SqlStore) -> None:
    a = await store.create_user(username=None, email="x@y.z", display_name="", password_hash="h")
    b = await store.create_user(username="b", email=None, display_name="", password_hash="h")
    c = await store.create_user(username=None, email="p@q.r", display_name="", password_hash="h")
    assert a.username is None
    assert b.email is None
    assert c.id not in (a.id, b.id)


async def test_username_unique_case_insensitively(store: SqlStore) -> None:
    await user(store, "alice")
    with pytest.raises(PalaverError) as caught:
        await user(store, "ALICE", email="other@example.org")
    assert caught.value.code is ErrorCode.CONFLICT
    assert caught.value.field == "username"


async def test_email_unique_case_insensitively(store: SqlStore) -> None:
    await user(store, "alice", email="alice@example.org")
    with pytest.raises(PalaverError) as caught:
        await user(store, "bob", email="ALICE@example.org")
    assert caught.value.code is ErrorCode.CONFLICT
    assert caught.value.field == "email"


async def test_store_usable_after_conflict(store: SqlStore) -> None:
    await user(store, "alice")
    with pytest.raises(PalaverError):
        await user(store, "alice")
    assert (await user(store, "bob")).username == "bob"


async def test_get_users(store: SqlStore) -> None:
    a, b = await user(store, "a"), await user(store, "b")
    assert await store.get_users([b.id, a.id, 999, a.id]) == {a.id: a, b.id: b}
    assert await store.get_users([]) == {}


async def test_get_user_by_login(store: SqlStore) -> None:
    alice = await user(store, "Alice", email="Alice@Example.org")
    assert await store.get_user_by_login("alice") == alice
    assert await store.get_user_by_login("ALICE") == alice
    assert await store.get_user_by_login("alice@EXAMPLE.org") == alice
    assert await store.get_user_by_login("nobody") is None


async def test_login_prefers_username_over_someone_elses_email(store: SqlStore) -> None:
    owner = await user(store, "carol", email="x@example.org")
    squatter = await user(store, "X@example.org", email="other@example.org")
    assert await store.get_user_by_login("x@example.org") == squatter
    assert owner.id != squatter.id


async def test_list_users(store: SqlStore) -> None:
    created = [await user(store, f"u{i}") for i in range(5)]
    await store.update_user(created[1].id, is_active=False)
    listed = await store.list_users()
    assert [u.id for u in listed] == [u.id for u in created]
    assert [u.id for u in await store.list_users(limit=2, offset=1)] == [
        created[1].id,
        created[2].id,
    ]
    active = await store.list_users(include_inactive=False)
    assert created[1].id not in [u.id for u in active]
    assert len(active) == 4


async def test_search_users(store: SqlStore) -> None:
    alice = await user(store, "alice", email="zed@example.org")
    alfred = await user(store, "Alfred", email="fred@example.org")
    bob = await store.create_user(
        username="bob", email="bob@example.org", display_name="Albert Bob", password_hash="h"
    )
    gone = await user(store, "alvin")
    await store.anonymise_user(gone.id, T0)
    assert [u.id for u in await store.search_users("AL")] == [alfred.id, alice.id, bob.id]
    assert [u.id for u in await store.search_users("zed")] == [alice.id]
    assert [u.id for u in await store.search_users("al", limit=1, offset=1)] == [alice.id]
    assert await store.search_users("%") == []
    assert await store.search_users("a_") == []


async def test_update_user(store: SqlStore) -> None:
    alice = await user(store, "alice")
    updated = await store.update_user(
        alice.id, display_name="Queen", avatar_url="/a.png", is_admin=True, last_seen_at=T0
    )
    assert updated is not None
    assert (updated.display_name, updated.avatar_url, updated.is_admin, updated.last_seen_at) == (
        "Queen",
        "/a.png",
        True,
        T0,
    )
    assert await store.get_user(alice.id) == updated
    assert await store.update_user(alice.id) == updated
    assert await store.update_user(999, display_name="x") is None
    with pytest.raises(ValueError, match="username"):
        await store.update_user(alice.id, username="mallory")


async def test_anonymise_user(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    general = await room(store, "general", alice, bob)
    alone = await room(store, "alone", alice)
    await store.create_session(session(alice.id, "s1"), "r1")
    await store.create_password_reset("reset", alice.id, T0, T0 + 1000)
    sent = await send(store, general, alice, "hello")

    changed = await store.anonymise_user(alice.id, T0 + 5)
    assert changed is not None
    assert changed.left == tuple(sorted((general.id, alone.id)))
    assert [(h.conversation_id, h.user_id, h.role) for h in changed.heirs] == [
        (general.id, bob.id, Role.OWNER)
    ]
    gone = await store.get_user(alice.id)
    assert gone is not None
    assert (gone.username, gone.email, gone.display_name, gone.avatar_url) == (None, None, "", None)
    assert gone.password_hash == ""
    assert not gone.is_active
    assert gone.deleted_at == T0 + 5
    revoked = await store.get_session("s1")
    assert revoked is not None
    assert revoked.revoked_at == T0 + 5
    assert await store.member_ids(general.id) == [bob.id]
    # What the account owned passes on, as when its owner leaves.
    heir = await store.get_member(general.id, bob.id)
    assert heir is not None
    assert heir.role is Role.OWNER
    assert await store.member_ids(alone.id) == []
    assert await store.consume_password_reset("reset", T0 + 10) is None
    assert await store.get_message(sent[0].message.id) == sent[0].message
    # Name and address are free again.
    assert (await user(store, "alice")).id != alice.id
    assert await store.anonymise_user(999, T0) is None


async def test_notices_lose_a_deleted_users_name_and_nothing_else(store: SqlStore) -> None:
    alice, bob = await user(store, "alice"), await user(store, "bob")
    # Carol's display name is Alice's too: only the places say whose a name is.
    carol = await store.create_user(
        username="carol", email=None, display_name="Alice", password_hash="h"
    )
    general = await room(store, "general", bob, alice, carol)
    other = await room(store, "other", carol)
    await send(store, general, bob, "hi Alice")
    notices = [
        (general.id, Notice.of(alice, " joined")),
        (general.id, Notice.of(bob, " made ", alice, " admin")),
        (general.id, Notice.of(alice, " renamed the room to Alice")),
        (general.id, Notice.of(carol, " joined")),
        (other.id, Notice.of(alice, " added ", carol)),
    ]
    stored = [await store.append_notice(cid, notice, T0 + 1) for cid, notice in notices]
    assert [(m.kind, m.sender_id, m.content) for m in stored[:2]] == [
        (MessageKind.SYSTEM, None, "Alice joined"),
        (MessageKind.SYSTEM, None, "Bob made Alice admin"),
    ]
    assert [m.seq for m in stored[:4]] == [2, 3, 4, 5]
    summary = await store.get_conversation(general.id)
    assert summary is not None
    assert (summary.last_seq, summary.last_message_at) == (5, T0 + 1)

    assert await store.anonymise_user(alice.id, T0 + 5)
    history = await store.get_messages(general.id)
    assert [m.content for m in history] == [
        "hi Alice",
        "Deleted user joined",
        "Bob made Deleted user admin",
        "Deleted user renamed the room to Alice",
        "Alice joined",
    ]
    assert [m.content for m in await store.get_messages(other.id)] == ["Deleted user added Alice"]
    # Carol's name still has its place, moved with the text before it.
    assert await store.anonymise_user(carol.id, T0 + 6)
    assert [m.content for m in await store.get_messages(other.id)] == [
        "Deleted user added Deleted user"
    ]
    assert (await store.get_messages(general.id))[-1].content == "Deleted user joined"
    with pytest.raises(PalaverError) as missing:
        await store.append_notice(999_999, Notice.of(bob, " joined"), T0)
    assert missing.value.code is ErrorCode.NOT_FOUND
