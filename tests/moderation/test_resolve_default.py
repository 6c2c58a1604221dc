"""Resolving a report needs no body: the resolution defaults to "resolved"."""

from __future__ import annotations

from tests.moderation.conftest import ON_PACKAGE_LOOP, Mod

pytestmark = ON_PACKAGE_LOOP


async def test_resolve_without_a_resolution(mod: Mod) -> None:
    alice, bob = [await mod.person(p) for p in ("ali", "bob")]
    admin = await mod.person("adm", admin=True)
    cid = await mod.room(alice, bob)
    first, second = [(await mod.send(alice, cid, text)).json() for text in ("one", "two")]
    reports = [
        await mod.ok(bob, "POST", f"/api/messages/{m['id']}/report", json={"reason": "rude"})
        for m in (first, second)
    ]
    empty = await mod.ok(admin, "POST", f"/api/admin/reports/{reports[0]['id']}/resolve", json={})
    assert empty["resolution"] == "resolved"
    bare = await mod.ok(admin, "POST", f"/api/admin/reports/{reports[1]['id']}/resolve")
    assert bare["resolution"] == "resolved"
    await mod.refused(
        admin,
        "POST",
        f"/api/admin/reports/{reports[1]['id']}/resolve",
        "VALIDATION_ERROR",
        json={"resolution": ""},
    )
