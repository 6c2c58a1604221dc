"""``GET /api/me/export``: a zip of the caller's own profile, messages and uploads."""

from __future__ import annotations

import io
import zipfile

import orjson

from palaver.config import Settings
from tests import media
from tests.api.conftest import Api


async def test_export_holds_profile_messages_and_files(api: Api, settings: Settings) -> None:
    ada = await api.register("ada", email="ada@example.com", display_name="Ada L")
    bob = await api.register("bob")
    a, b = api.bearer(ada["token"]), api.bearer(bob["token"])
    rid = (
        await api.http.post("/api/conversations", json={"type": "room", "name": "lab"}, headers=a)
    ).json()["id"]
    await api.http.post(f"/api/conversations/{rid}/join", headers=b)
    photo = await api.http.post(
        "/api/upload", files={"file": ("p.png", media.image("PNG"), "image/png")}, headers=a
    )
    served = (await api.http.get(photo.json()["url"], headers=a)).content
    for content, headers in (("first", a), ("from bob", b), ("second", a)):
        r = await api.http.post(
            f"/api/conversations/{rid}/messages", json={"content": content}, headers=headers
        )
        assert r.status_code == 201
    with_file = await api.http.post(
        f"/api/conversations/{rid}/messages",
        json={"attachments": [photo.json()["id"]]},
        headers=a,
    )
    assert with_file.status_code == 201, with_file.text

    r = await api.http.get("/api/me/export", headers=a)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/zip"
    assert r.headers["content-disposition"].startswith("attachment;")
    assert r.headers["cache-control"] == "no-store"
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    profile = orjson.loads(archive.read("profile.json"))
    assert (profile["username"], profile["email"], profile["display_name"]) == (
        "ada",
        "ada@example.com",
        "Ada L",
    )
    assert "password_hash" not in profile
    assert [c["name"] for c in profile["conversations"]] == ["lab"]
    lines = [orjson.loads(line) for line in archive.read("messages.jsonl").splitlines()]
    assert [(m["content"], m["conversation_id"], m["conversation_name"]) for m in lines] == [
        ("first", rid, "lab"),
        ("second", rid, "lab"),
        ("", rid, "lab"),
    ]
    assert lines[-1]["attachments"][0]["id"] == photo.json()["id"]
    index = orjson.loads(archive.read("uploads.json"))
    assert [(u["id"], u["file"]) for u in index] == [
        (photo.json()["id"], f"uploads/{photo.json()['id']}-p.png")
    ]
    assert archive.read(index[0]["file"]) == served
    # Nothing of bob's is in ada's archive.
    assert b"from bob" not in b"".join(archive.read(n) for n in archive.namelist())
    # The scratch file is gone once sent.
    scratch = settings.effective_upload_dir / "tmp"
    assert list(scratch.iterdir()) == []
    events = await api.services.store.list_audit(action="data.export")
    assert [(e.actor_id, e.details) for e in events] == [
        (ada["user"]["id"], {"messages": 3, "uploads": 1})
    ]


async def test_export_is_rate_limited_and_needs_a_login(api: Api) -> None:
    ada = await api.register("ada")
    a = api.bearer(ada["token"])
    assert (await api.http.get("/api/me/export")).status_code == 401
    assert (await api.http.get("/api/me/export", headers=a)).status_code == 200
    assert (await api.http.get("/api/me/export", headers=a)).status_code == 200
    third = await api.http.get("/api/me/export", headers=a)
    assert third.status_code == 429
    assert third.json()["error"]["code"] == "RATE_LIMITED"
    assert int(third.headers["retry-after"]) > 60
    # Another user's budget is their own.
    bob = await api.register("bob")
    assert (
        await api.http.get("/api/me/export", headers=api.bearer(bob["token"]))
    ).status_code == 200
