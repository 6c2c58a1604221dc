"""``HEAD`` and single byte ranges on ``GET /api/uploads/{id}``, over a real server."""

from __future__ import annotations

import httpx
import pytest

from palaver.core.uploads import RangeNotSatisfiable, byte_range
from tests.realtime.conftest import Server
from tests.realtime.test_attachments import upload

# Text is stored as uploaded (images are re-encoded), so its bytes are known.
BODY = b"".join(b"line %04d of the minutes\n" % i for i in range(4000))


async def test_head_and_ranges(server: Server) -> None:
    (_, ada), (_, eve) = await server.user("ada"), await server.user("eve")
    doc = await upload(server, ada, BODY, "minutes.txt")
    size = len(BODY)
    assert doc["size"] == size > 64 * 1024
    auth = {"Authorization": f"Bearer {ada}"}
    async with httpx.AsyncClient(base_url=server.base, headers=auth) as http:
        head = await http.head(doc["url"])
        assert head.status_code == 200
        assert head.content == b""
        assert head.headers["content-length"] == str(size)
        assert head.headers["accept-ranges"] == "bytes"
        assert head.headers["content-type"] == "text/plain; charset=utf-8"
        assert head.headers["x-content-type-options"] == "nosniff"
        assert head.headers["content-disposition"].startswith("attachment;")

        full = await http.get(doc["url"])
        assert (full.status_code, full.content) == (200, BODY)
        assert full.headers["accept-ranges"] == "bytes"

        # Across the storage's 64 KB reads, from the start, open-ended, a suffix, past
        # the end (cut to the file).
        cases = {
            "bytes=65530-70000": (65530, 70000),
            "bytes=0-0": (0, 0),
            f"bytes={size - 10}-": (size - 10, size - 1),
            "bytes=-25": (size - 25, size - 1),
            f"bytes=100-{size + 500}": (100, size - 1),
        }
        for header, (first, last) in cases.items():
            part = await http.get(doc["url"], headers={"Range": header})
            assert part.status_code == 206, header
            assert part.content == BODY[first : last + 1], header
            assert part.headers["content-range"] == f"bytes {first}-{last}/{size}"
            assert part.headers["content-length"] == str(last - first + 1)
            assert part.headers["x-content-type-options"] == "nosniff"
        ranged_head = await http.head(doc["url"], headers={"Range": "bytes=10-19"})
        assert ranged_head.status_code == 206
        assert ranged_head.headers["content-length"] == "10"
        assert ranged_head.headers["content-range"] == f"bytes 10-19/{size}"

        past = await http.get(doc["url"], headers={"Range": f"bytes={size}-"})
        assert past.status_code == 416
        assert past.headers["content-range"] == f"bytes */{size}"
        # Several ranges, or a unit Palaver does not know: the whole file.
        for header in ("bytes=0-9,20-29", "items=0-9", "bytes=9-0"):
            whole = await http.get(doc["url"], headers={"Range": header})
            assert (whole.status_code, whole.content) == (200, BODY), header

    # Outsiders get the same 404 with HEAD and with a range as with a plain GET.
    async with httpx.AsyncClient(base_url=server.base) as http:
        outsider = {"Authorization": f"Bearer {eve}"}
        assert (await http.head(doc["url"], headers=outsider)).status_code == 404
        ranged = await http.get(doc["url"], headers={**outsider, "Range": "bytes=0-9"})
        assert ranged.status_code == 404
        assert (await http.head(doc["url"])).status_code == 401


def test_byte_range_parsing() -> None:
    assert byte_range(None, 10) is None
    assert byte_range("bytes=2-4", 10) == (2, 4)
    assert byte_range("bytes = 2 - 4", 10) == (2, 4)
    assert byte_range("bytes=-3", 10) == (7, 9)
    assert byte_range("bytes=-30", 10) == (0, 9)
    assert byte_range("bytes=8-", 10) == (8, 9)
    assert byte_range("bytes=-", 10) is None
    for unsatisfiable in ("bytes=10-", "bytes=-0", "bytes=12-20"):
        with pytest.raises(RangeNotSatisfiable):
            byte_range(unsatisfiable, 10)
