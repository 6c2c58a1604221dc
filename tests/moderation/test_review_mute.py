"""A mute must survive the muted member leaving and joining the room again."""

from __future__ import annotations

from tests.moderation.conftest import Mod


async def test_a_muted_member_cannot_shed_the_mute_by_leaving_and_rejoining(
    mod_sqlite: Mod,
) -> None:
    mod = mod_sqlite
    owner = await mod.person("own")
    carol = await mod.person("car")
    cid = await mod.room(owner, carol)
    await mod.ok(
        owner, "PUT", f"/api/conversations/{cid}/members/{carol.id}/mute", json={"duration": 3600}
    )
    await mod.refused(
        carol, "POST", f"/api/conversations/{cid}/messages", "MUTED", json={"content": "x"}
    )
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/leave")
    await mod.ok(carol, "POST", f"/api/conversations/{cid}/join")
    await mod.refused(
        carol, "POST", f"/api/conversations/{cid}/messages", "MUTED", json={"content": "x"}
    )
