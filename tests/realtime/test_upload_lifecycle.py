"""How uploads end, on SQLite and PostgreSQL: with their message, with their owner's
account, or unattached after ``upload_orphan_hours``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from palaver.core.models import now_ms
from palaver.services.storage import new_key
from palaver.services.uploads import ATTACH_MARGIN_MS
from tests import media
from tests.realtime.conftest import PASSWORD, Server
from tests.realtime.test_attachments import any_server, fetch, upload

__all__ = ["any_server"]

HOUR_MS = 3_600_000


def blobs(server: Server) -> set[Path]:
    root = server.settings.effective_upload_dir
    return {p for p in root.rglob("*") if p.is_file() and p.parent.name != "tmp"}


async def send(server: Server, token: str, rid: int, *upload_ids: int) -> Any:
    r = await server.rest(
        token,
        "POST",
        f"/api/conversations/{rid}/messages",
        json={"content": "look", "attachments": list(upload_ids)},
    )
    assert r.status_code == 201, r.text
    return r.json()


async def test_deleting_a_message_makes_its_files_unreadable(any_server: Server) -> None:
    server = any_server
    (_, ada), (_, bob), (_, mod) = [await server.user(n) for n in ("ada", "bob", "mod")]
    rid = await server.room(mod, "team")
    for token in (ada, bob):
        assert (await server.rest(token, "POST", f"/api/conversations/{rid}/join")).is_success
    photo = await upload(server, ada, media.image("PNG", (40, 30)), "cat.png")
    doc = await upload(server, ada, media.PDF, "notes.pdf")
    kept = await upload(server, ada, media.image("PNG"), "dog.png")
    before = blobs(server)
    assert len(before) == 5  # two images with thumbnails, one PDF
    gone = await send(server, ada, rid, photo["id"], doc["id"])
    other = await send(server, ada, rid, kept["id"])
    paths = [photo["url"], photo["thumbnail_url"], f"{photo['url']}/info", doc["url"]]
    for path in paths:
        assert await fetch(server, bob, path) == 200

    deleted = await server.rest(ada, "DELETE", f"/api/messages/{gone['id']}")
    assert deleted.status_code == 204, deleted.text
    for token in (ada, bob, mod):
        for path in paths:
            assert await fetch(server, token, path) == 404
    # The files and the thumbnail are off the disk; the other message's file stays.
    assert len(blobs(server)) == 2
    assert await fetch(server, bob, kept["url"]) == 200
    # A moderator's delete removes the files too.
    assert (await server.rest(mod, "DELETE", f"/api/messages/{other['id']}")).status_code == 204
    assert await fetch(server, ada, kept["url"]) == 404
    assert blobs(server) == set()
    # A deleted message's upload cannot be attached again.
    again = await server.rest(
        ada,
        "POST",
        f"/api/conversations/{rid}/messages",
        json={"content": "again", "attachments": [photo["id"]]},
    )
    assert again.status_code == 404


async def test_deleting_an_account_deletes_its_files(any_server: Server) -> None:
    server = any_server
    (ada_id, ada), (_, bob) = [await server.user(n) for n in ("ada", "bob")]
    rid = await server.room(bob, "team")
    assert (await server.rest(ada, "POST", f"/api/conversations/{rid}/join")).is_success
    shared = await upload(server, ada, media.image("PNG"), "shared.png")
    await send(server, ada, rid, shared["id"])
    loose = await upload(server, ada, media.PDF, "draft.pdf")
    bobs = await upload(server, bob, media.PDF, "bob.pdf", conversation_id=rid)
    assert await fetch(server, bob, shared["url"]) == 200

    r = await server.rest(ada, "DELETE", "/api/auth/me", json={"password": PASSWORD})
    assert r.status_code == 204, r.text
    for path in (shared["url"], shared["thumbnail_url"], loose["url"]):
        assert await fetch(server, bob, path) == 404
    assert await server.services.uploads.records.list_for_owner(ada_id) == []
    assert len(blobs(server)) == 1
    assert await fetch(server, bob, bobs["url"]) == 200
    # The message stays (its sender shown as deleted) with the file's name only.
    history = await server.rest(bob, "GET", f"/api/conversations/{rid}/messages")
    names = [a["name"] for m in history.json()["messages"] for a in m.get("attachments") or []]
    assert names == ["shared.png"]


async def test_unattached_uploads_expire(any_server: Server) -> None:
    server = any_server
    uploads = server.services.uploads
    assert server.settings.upload_orphan_hours == 24
    # The node runs the expiry job.
    assert server.services.upload_expiry._task is not None
    (_, ada), (_, bob) = [await server.user(n) for n in ("ada", "bob")]
    rid = await server.room(ada, "team")
    assert (await server.rest(bob, "POST", f"/api/conversations/{rid}/join")).is_success
    loose = await upload(server, ada, media.image("PNG"), "loose.png")
    bound = await upload(server, ada, media.PDF, "bound.pdf", conversation_id=rid)
    attached = await upload(server, ada, media.PDF, "sent.pdf", conversation_id=rid)
    late = await upload(server, ada, media.PDF, "late.pdf")
    await send(server, ada, rid, attached["id"])
    start = now_ms()

    assert await uploads.remove_unattached(now=start + 23 * HOUR_MS) == 0
    for item in (loose, bound, attached, late):
        assert await fetch(server, ada, item["url"]) == 200
    # Attached just before its time: it stays.
    await send(server, ada, rid, late["id"])
    # Past 24 hours: the image and its thumbnail, and the bound but never sent PDF.
    assert await uploads.remove_unattached(now=start + 25 * HOUR_MS) == 3
    for item in (loose, bound):
        assert await fetch(server, ada, item["url"]) == 404
    for item in (attached, late):
        assert await fetch(server, bob, item["url"]) == 200
    assert len(blobs(server)) == 2
    # An expired upload cannot be attached any more.
    r = await server.rest(
        ada,
        "POST",
        f"/api/conversations/{rid}/messages",
        json={"content": "x", "attachments": [bound["id"]]},
    )
    assert r.status_code == 404
    assert await uploads.remove_unattached(now=start + 100 * HOUR_MS) == 0


async def test_deleting_one_message_keeps_a_file_another_message_carries(
    any_server: Server,
) -> None:
    # An upload already attached may be attached again in the same conversation (a
    # forward, a resend): deleting the first message must not break the second.
    server = any_server
    (_, ada), (_, bob) = [await server.user(n) for n in ("ada", "bob")]
    rid = await server.room(ada, "team")
    assert (await server.rest(bob, "POST", f"/api/conversations/{rid}/join")).is_success
    photo = await upload(server, ada, media.image("PNG", (40, 30)), "cat.png")
    first = await send(server, ada, rid, photo["id"])
    second = await send(server, ada, rid, photo["id"])
    assert second["attachments"][0]["id"] == photo["id"]
    deleted = await server.rest(ada, "DELETE", f"/api/messages/{first['id']}")
    assert deleted.status_code == 204, deleted.text
    assert await fetch(server, bob, photo["url"]) == 200


async def test_a_refused_send_leaves_its_file_to_expire(any_server: Server) -> None:
    server = any_server
    (_, ada) = await server.user("ada")
    rid = await server.room(ada, "team")
    doc = await upload(server, ada, media.PDF, "notes.pdf")
    refused = await server.rest(
        ada,
        "POST",
        f"/api/conversations/{rid}/messages",
        json={"content": "look", "attachments": [doc["id"]], "reply_to_id": 999999},
    )
    assert refused.status_code == 404, refused.text
    # No message carries the file: it is still unattached and expires as such.
    later = now_ms() + 25 * HOUR_MS
    assert await server.services.uploads.remove_unattached(now=later) == 1


async def test_an_upload_about_to_expire_is_not_attached(any_server: Server) -> None:
    # Only the commit of its message marks an upload attached: one the expiry job could
    # delete before that commit is refused up front, as if it had expired.
    server = any_server
    (ada_id, ada) = await server.user("ada")
    rid = await server.room(ada, "team")
    records = server.services.uploads.records
    ages = {
        "closing": 24 * HOUR_MS - ATTACH_MARGIN_MS // 2,
        "open": 24 * HOUR_MS - 2 * ATTACH_MARGIN_MS,
    }
    made = {}
    for name, age in ages.items():
        made[name] = await records.create(
            owner_id=ada_id,
            conversation_id=None,
            name=f"{name}.pdf",
            kind="pdf",
            size=3,
            storage_key=new_key(),
            thumbnail_key=None,
            width=None,
            height=None,
            at=now_ms() - age,
        )
    closing = await server.rest(
        ada,
        "POST",
        f"/api/conversations/{rid}/messages",
        json={"content": "late", "attachments": [made["closing"].id]},
    )
    assert closing.status_code == 404, closing.text
    await send(server, ada, rid, made["open"].id)
    # The refused one expires; the other, attached when its message was stored, stays.
    assert await server.services.uploads.remove_unattached(now=now_ms() + 25 * HOUR_MS) == 1
    assert await records.get(made["closing"].id) is None
    assert await records.get(made["open"].id) is not None
