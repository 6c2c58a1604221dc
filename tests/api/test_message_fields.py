"""REST message objects carry optional fields only when set, as socket frames do."""

from __future__ import annotations

from tests.api.conftest import Api

OPTIONAL = ("ref_id", "reply_to_id", "thread_root_id", "edited_at", "deleted_at")


async def test_history_pins_and_threads_omit_unset_fields(api: Api) -> None:
    token = (await api.register("ada"))["token"]
    auth = api.bearer(token)
    created = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "general"}, headers=auth
    )
    cid = created.json()["id"]
    sent = await api.http.post(
        f"/api/conversations/{cid}/messages", json={"content": "hello"}, headers=auth
    )
    mid = sent.json()["id"]
    reply = await api.http.post(
        f"/api/conversations/{cid}/messages",
        json={"content": "re", "reply_to_id": mid},
        headers=auth,
    )
    assert reply.status_code == 201, reply.text
    page = (await api.http.get(f"/api/conversations/{cid}/messages", headers=auth)).json()
    assert "gap" not in page
    plain, answer = page["messages"]
    for field in (*OPTIONAL, "attachments", "mentions", "reactions", "thread", "pinned"):
        assert field not in plain, field
    assert None not in [plain[f] for f in ("id", "seq", "content", "created_at")]
    assert answer["reply_to_id"] == mid
    assert "edited_at" not in answer
    edited = await api.http.patch(f"/api/messages/{mid}", json={"content": "hi"}, headers=auth)
    assert edited.json()["edited_at"] > 0
    assert "deleted_at" not in edited.json()
    assert "attachments" not in edited.json()
    assert (await api.http.put(f"/api/messages/{mid}/pin", headers=auth)).status_code == 200
    [pinned] = (await api.http.get(f"/api/conversations/{cid}/pins", headers=auth)).json()
    assert "attachments" not in pinned
    assert "ref_id" not in pinned
    thread = (await api.http.get(f"/api/messages/{mid}/thread", headers=auth)).json()
    assert "ref_id" not in thread["root"]
    assert "deleted_at" not in thread["root"]
