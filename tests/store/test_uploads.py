"""Upload records and the export reads, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from functools import partial
from typing import Any

import orjson
import pytest
from sqlalchemy import text

from palaver.core.errors import ErrorCode, PalaverError
from palaver.core.models import NewMessage
from palaver.core.uploads import Upload
from palaver.store.sql import SqlStore
from palaver.store.uploads import UploadStore

from .helpers import T0, room, send, user


async def make(records: UploadStore, owner_id: int, key: str, **extra: Any) -> Upload:
    values: dict[str, Any] = {
        "owner_id": owner_id,
        "conversation_id": None,
        "name": f"{key}.png",
        "kind": "png",
        "size": 100,
        "storage_key": key.ljust(32, "0"),
        "thumbnail_key": None,
        "width": 10,
        "height": 5,
        "at": T0,
        **extra,
    }
    return await records.create(**values)


async def test_readable_by_owner_and_members_of_the_bound_conversation(store: SqlStore) -> None:
    records = UploadStore(store)
    ada, bob, eve = [await user(store, n) for n in ("ada", "bob", "eve")]
    team = await room(store, "team", ada, bob)
    loose = await make(records, ada.id, "a")
    shared = await make(records, ada.id, "b", conversation_id=team.id, thumbnail_key="t" * 32)
    assert shared.thumbnail_key == "t" * 32
    assert await records.get(loose.id) == loose
    assert await records.get_readable(loose.id, ada.id) == loose
    assert await records.get_readable(loose.id, bob.id) is None
    assert await records.get_readable(shared.id, bob.id) == shared
    assert await records.get_readable(shared.id, eve.id) is None
    assert await records.get_readable(999, ada.id) is None
    # Leaving the conversation ends access.
    assert await store.remove_member(team.id, bob.id)
    assert await records.get_readable(shared.id, bob.id) is None


async def test_bind_only_the_owners_unbound_uploads(store: SqlStore) -> None:
    records = UploadStore(store)
    ada, bob = await user(store, "ada"), await user(store, "bob")
    team = await room(store, "team", ada, bob)
    other = await room(store, "other", ada)
    mine = await make(records, ada.id, "a")
    elsewhere = await make(records, ada.id, "b", conversation_id=other.id)
    bobs = await make(records, bob.id, "c")
    assert await records.bind([mine.id, elsewhere.id, bobs.id], ada.id, team.id) == 1
    found = await records.get_many([mine.id, elsewhere.id, bobs.id, 12345])
    assert {i: u.conversation_id for i, u in found.items()} == {
        mine.id: team.id,
        elsewhere.id: other.id,
        bobs.id: None,
    }
    # Binding again is idempotent.
    assert await records.bind([mine.id], ada.id, team.id) == 1
    # Binding is not attaching: only storing a message that carries an upload is.
    assert (await records.get_many([mine.id]))[mine.id].attached_at is None
    assert await records.get_many([]) == {}


def carrying(
    conversation_id: int, sender_id: int, *files: Upload, client_msg_id: str | None = None
) -> NewMessage:
    return NewMessage(
        conversation_id,
        sender_id,
        "look",
        client_msg_id=client_msg_id,
        attachments=tuple(f.attachment() for f in files),
    )


@pytest.mark.parametrize("path", ["engine", "portable"])
async def test_storing_a_message_marks_the_uploads_it_carries_attached(
    store: SqlStore, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The transaction that stores a message marks its uploads attached, and nothing
    else does: a refused batch and a duplicate leave theirs to expire, and a message
    naming an upload bound to another conversation is refused. Both the engine's own
    append path and the portable one (SQLite in memory)."""
    if path == "portable":
        monkeypatch.setattr(store, "_append_batch", partial(SqlStore._append_batch, store))
    records = UploadStore(store)
    ada = await user(store, "ada")
    team, other = await room(store, "team", ada), await room(store, "other", ada)
    early, sent, twice, again, refused = [
        await make(records, ada.id, key, conversation_id=team.id) for key in "abcde"
    ]
    elsewhere = await make(records, ada.id, "f", conversation_id=other.id)
    [first] = await store.append_messages([carrying(team.id, ada.id, early, client_msg_id="m")], T0)
    with pytest.raises(PalaverError) as refusal:
        await store.append_messages(
            [carrying(team.id, ada.id, refused), carrying(other.id + 100, ada.id, refused)], T0
        )
    assert refusal.value.code is ErrorCode.NOT_FOUND
    with pytest.raises(PalaverError) as refusal:
        await store.append_messages([carrying(team.id, ada.id, elsewhere)], T0)
    assert (refusal.value.code, refusal.value.message) == (
        ErrorCode.NOT_FOUND,
        "upload not found",
    )
    batch = [
        carrying(team.id, ada.id, sent, twice),
        NewMessage(team.id, ada.id, "plain"),
        carrying(team.id, ada.id, twice, early),
        carrying(team.id, ada.id, again, client_msg_id="m"),  # a retry of the first
        NewMessage(team.id, ada.id, "no upload", attachments=({"id": "x", "name": "x"},)),
    ]
    results = await store.append_messages(batch, T0 + 5)
    assert [r.duplicate for r in results] == [False, False, False, True, False]
    assert results[3].message == first.message
    files = (early, sent, twice, again, refused, elsewhere)
    found = await records.get_many([f.id for f in files])
    assert [found[f.id].attached_at for f in files] == [T0, T0 + 5, T0 + 5, None, None, None]
    # What is not attached expires; what is, stays.
    gone = await records.remove_unattached(T0 + 10)
    assert sorted(gone) == sorted(f.storage_key for f in (again, refused, elsewhere))


async def test_list_and_delete(store: SqlStore) -> None:
    records = UploadStore(store)
    ada, bob = await user(store, "ada"), await user(store, "bob")
    made = [await make(records, ada.id, f"k{i}") for i in range(3)]
    await make(records, bob.id, "bob")
    assert [u.id for u in await records.list_for_owner(ada.id, limit=2)] == [m.id for m in made[:2]]
    rest = await records.list_for_owner(ada.id, after_id=made[1].id)
    assert [u.id for u in rest] == [made[2].id]
    assert await records.delete(made[0].id)
    assert not await records.delete(made[0].id)


async def test_messages_by_sender_pages_with_conversation_names(store: SqlStore) -> None:
    records = UploadStore(store)
    ada, bob = await user(store, "ada"), await user(store, "bob")
    team = await room(store, "team", ada, bob)
    direct, _ = await store.get_or_create_direct(ada.id, bob.id, T0)
    await send(store, team, ada, "one", "two")
    await send(store, team, bob, "not mine")
    pdf = await make(records, ada.id, "x", conversation_id=direct.id)
    element = {"id": pdf.id, "name": "x.pdf", "type": "application/pdf", "size": 3}
    await store.append_messages(
        [
            NewMessage(
                conversation_id=direct.id, sender_id=ada.id, content="", attachments=(element,)
            )
        ],
        T0,
    )
    first = await records.messages_by_sender(ada.id, limit=2)
    assert [(m.message.content, m.conversation_name, m.conversation_kind) for m in first] == [
        ("one", "team", "room"),
        ("two", "team", "room"),
    ]
    rest = await records.messages_by_sender(ada.id, after_id=first[-1].message.id)
    assert [(m.conversation_kind, m.message.attachments) for m in rest] == [("direct", (element,))]


@pytest.mark.parametrize("path", ["engine", "portable"])
async def test_a_message_carrying_the_upload_of_a_message_just_deleted_is_refused(
    store: SqlStore, path: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting a message deletes the uploads no other message carries. A message
    naming one of them that commits after that deletion is refused (NOT_FOUND), never
    stored pointing at nothing; the others of its batch are not affected."""
    if path == "portable":
        monkeypatch.setattr(store, "_append_batch", partial(SqlStore._append_batch, store))
    records = UploadStore(store)
    ada = await user(store, "ada")
    team = await room(store, "team", ada)
    photo = await make(records, ada.id, "a", conversation_id=team.id)
    [first] = await store.append_messages([carrying(team.id, ada.id, photo)], T0)
    deleted = await store.delete_message(first.message.id, ada.id, T0 + 1)
    assert deleted is not None
    assert deleted.blobs == (photo.storage_key,)
    assert await records.get_many([photo.id]) == {}
    for batch in (
        [carrying(team.id, ada.id, photo)],
        [NewMessage(team.id, ada.id, "plain"), carrying(team.id, ada.id, photo)],
    ):
        with pytest.raises(PalaverError) as refusal:
            await store.append_messages(batch, T0 + 2)
        assert refusal.value.code is ErrorCode.NOT_FOUND
    conversation = await store.get_conversation(team.id)
    assert conversation is not None
    assert conversation.last_seq == first.message.seq + 1  # the delete entry, nothing else


async def test_an_append_waits_for_a_deletion_holding_its_upload(store: SqlStore) -> None:
    """The interleaving the check exists for: another transaction (a message's deletion)
    holds an upload and deletes it; a message carrying it waits, then is refused."""
    records = UploadStore(store)
    ada = await user(store, "ada")
    team = await room(store, "team", ada)
    photo = await make(records, ada.id, "a", conversation_id=team.id)
    async with store.engine.connect() as other:
        await other.begin()
        await other.execute(text("DELETE FROM uploads WHERE id = :id"), {"id": photo.id})
        sending = asyncio.create_task(store.append_messages([carrying(team.id, ada.id, photo)], T0))
        await asyncio.sleep(0.3)
        assert not sending.done()
        await other.commit()
    with pytest.raises(PalaverError) as refusal:
        await sending
    assert refusal.value.code is ErrorCode.NOT_FOUND
    assert await store.get_messages(team.id) == []


async def test_a_deletion_waits_for_an_append_holding_its_upload(store: SqlStore) -> None:
    """The other interleaving: a message carrying the upload is being stored (its
    transaction holds the upload) when another message carrying it is deleted. The
    deletion waits, then sees the new message and keeps the upload."""
    records = UploadStore(store)
    ada = await user(store, "ada")
    team = await room(store, "team", ada)
    photo = await make(records, ada.id, "a", conversation_id=team.id)
    [first] = await store.append_messages([carrying(team.id, ada.id, photo)], T0)
    attachments = orjson.dumps([photo.attachment()]).decode()
    as_json = "CAST(:att AS json)" if store.engine.dialect.name == "postgresql" else ":att"
    async with store.engine.connect() as other:
        await other.begin()
        # What an append does: hold the upload, then the conversation, then insert.
        await other.execute(
            text("UPDATE uploads SET attached_at = attached_at WHERE id = :id"), {"id": photo.id}
        )
        await other.execute(
            text("UPDATE conversations SET last_seq = last_seq + 1 WHERE id = :cid"),
            {"cid": team.id},
        )
        await other.execute(
            text(
                "INSERT INTO messages (conversation_id, seq, sender_id, kind, content, "
                f"created_at, attachments) VALUES (:cid, 2, :uid, 'text', 'again', :at, {as_json})"
            ),
            {"cid": team.id, "uid": ada.id, "at": T0, "att": attachments},
        )
        deleting = asyncio.create_task(store.delete_message(first.message.id, ada.id, T0 + 1))
        await asyncio.sleep(0.3)
        assert not deleting.done()
        await other.commit()
    deleted = await deleting
    assert deleted is not None
    assert deleted.blobs == ()
    assert photo.id in await records.get_many([photo.id])
    [again] = await store.get_messages(team.id, after_seq=1, limit=1)
    assert again.attachments == (photo.attachment(),)
