"""The export's messages are the user's messages as they stand (edits applied,
tombstones marked, replies and threads linked), never the stream's mutation entries;
archive entries carry real dates."""

from __future__ import annotations

import io
import time
import zipfile

import orjson

from tests.api.conftest import Api


async def test_export_lists_messages_as_they_stand(api: Api) -> None:
    ada = api.bearer((await api.register("ada"))["token"])
    rid = (
        await api.http.post("/api/conversations", json={"type": "room", "name": "lab"}, headers=ada)
    ).json()["id"]

    async def send(content: str, **extra: int) -> int:
        r = await api.http.post(
            f"/api/conversations/{rid}/messages", json={"content": content, **extra}, headers=ada
        )
        assert r.status_code == 201, r.text
        return int(r.json()["id"])

    first = await send("first")
    gone = await send("gone")
    reply = await send("a reply", reply_to_id=first)
    threaded = await send("in the thread", thread_root_id=first)
    assert (
        await api.http.patch(
            f"/api/messages/{first}", json={"content": "first, edited"}, headers=ada
        )
    ).status_code == 200
    assert (
        await api.http.put(f"/api/messages/{first}/reactions/👍", headers=ada)
    ).status_code == 200
    assert (await api.http.put(f"/api/messages/{first}/pin", headers=ada)).status_code == 200
    assert (await api.http.delete(f"/api/messages/{gone}", headers=ada)).status_code == 204

    r = await api.http.get("/api/me/export", headers=ada)
    assert r.status_code == 200, r.text
    archive = zipfile.ZipFile(io.BytesIO(r.content))
    lines = [orjson.loads(line) for line in archive.read("messages.jsonl").splitlines()]
    assert [m["message_id"] for m in lines] == [first, gone, reply, threaded]
    assert {m["kind"] for m in lines} == {"text"}
    by_id = {m["message_id"]: m for m in lines}
    assert by_id[first]["content"] == "first, edited"
    assert by_id[first]["edited_at"] > 0
    assert "deleted_at" not in by_id[first]
    assert (by_id[gone]["content"], by_id[gone]["deleted_at"] > 0) == ("", True)
    assert by_id[reply]["reply_to_id"] == first
    assert by_id[threaded]["thread_root_id"] == first
    assert "edited_at" not in by_id[reply]
    this_year = time.localtime().tm_year
    for info in archive.infolist():
        assert info.date_time[0] >= this_year - 1, (info.filename, info.date_time)
        assert info.compress_type == zipfile.ZIP_DEFLATED
