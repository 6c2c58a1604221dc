"""``POST /api/upload`` and ``GET /api/uploads/{id}``: re-encoding, the allow-list,
limits, attacks, headers and who may read a file."""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from PIL import ExifTags, Image

from palaver.config import Settings
from tests import media
from tests.api.conftest import Api, open_api
from tests.isolated import isolated_settings


async def upload(
    api: Api,
    token: str,
    data: bytes,
    name: str = "file.bin",
    *,
    content_type: str = "application/octet-stream",
    conversation_id: int | None = None,
) -> httpx.Response:
    form = {"conversation_id": str(conversation_id)} if conversation_id is not None else None
    return await api.http.post(
        "/api/upload",
        files={"file": (name, data, content_type)},
        data=form,
        headers=api.bearer(token),
    )


async def login(api: Api, *names: str) -> list[str]:
    return [(await api.register(name))["token"] for name in names]


def stored_files(settings: Settings) -> list[Path]:
    root = settings.effective_upload_dir
    return [p for p in root.rglob("*") if p.is_file()] if root.exists() else []


def scratch_files(settings: Settings) -> list[Path]:
    return [p for p in stored_files(settings) if p.parent.name == "tmp"]


@pytest.mark.parametrize(
    ("fmt", "kind", "mime"),
    [
        ("JPEG", "jpeg", "image/jpeg"),
        ("PNG", "png", "image/png"),
        ("GIF", "gif", "image/gif"),
        ("WEBP", "webp", "image/webp"),
    ],
)
async def test_each_image_type_is_reencoded_with_a_thumbnail(
    api: Api, fmt: str, kind: str, mime: str
) -> None:
    (ada,) = await login(api, "ada")
    original = media.image(fmt, (600, 300))
    r = await upload(api, ada, original, f"photo.{kind}", content_type="text/html")
    assert r.status_code == 201, r.text
    body = r.json()
    assert (body["type"], body["width"], body["height"]) == (mime, 600, 300)
    assert body["thumbnail"] is True
    assert body["name"] == f"photo.{kind}"
    served = await api.http.get(body["url"], headers=api.bearer(ada))
    assert served.status_code == 200
    assert served.headers["content-type"] == mime
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
    assert served.headers["content-disposition"].startswith("inline;")
    assert int(served.headers["content-length"]) == body["size"] == len(served.content)
    with Image.open(io.BytesIO(served.content)) as decoded:
        assert decoded.format == fmt
        assert decoded.size == (600, 300)
    thumb = await api.http.get(body["thumbnail_url"], headers=api.bearer(ada))
    assert thumb.status_code == 200
    assert thumb.headers["content-type"] == "image/jpeg"
    with Image.open(io.BytesIO(thumb.content)) as small:
        assert small.size == (320, 160)


async def test_exif_gps_and_comments_are_stripped_and_orientation_applied(api: Api) -> None:
    (ada,) = await login(api, "ada")
    # Orientation 6: the camera was turned, the viewer must rotate 90 degrees clockwise.
    original = media.image(
        "JPEG", (80, 40), exif=True, orientation=6, comment=b"<b>secret note</b>"
    )
    with Image.open(io.BytesIO(original)) as before:
        assert before.getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the test file has GPS
    r = await upload(api, ada, original, "holiday.jpg")
    assert r.status_code == 201, r.text
    assert (r.json()["width"], r.json()["height"]) == (40, 80)
    served = (await api.http.get(r.json()["url"], headers=api.bearer(ada))).content
    for secret in (b"Exif", b"SpyCam", b"secret note", b"GPS"):
        assert secret not in served
    with Image.open(io.BytesIO(served)) as after:
        assert dict(after.getexif()) == {}
        assert "comment" not in after.info
        assert after.size == (40, 80)
        # The blue left half is now the top half: the pixels were turned, not tagged.
        top, bottom = after.getpixel((20, 5)), after.getpixel((20, 75))
    assert isinstance(top, tuple)
    assert isinstance(bottom, tuple)
    assert top[2] > 150 > bottom[2]


async def test_animated_gif_keeps_its_first_frame(api: Api) -> None:
    (ada,) = await login(api, "ada")
    r = await upload(api, ada, media.animated_gif(4), "anim.gif")
    assert r.status_code == 201, r.text
    served = (await api.http.get(r.json()["url"], headers=api.bearer(ada))).content
    with Image.open(io.BytesIO(served)) as gif:
        assert getattr(gif, "n_frames", 1) == 1
        assert gif.convert("RGB").getpixel((0, 0)) == (255, 0, 0)


async def test_polyglot_payloads_do_not_survive_reencoding(api: Api) -> None:
    (ada,) = await login(api, "ada")
    for fmt, name in (("GIF", "poly.gif"), ("JPEG", "poly.jpg"), ("PNG", "poly.png")):
        polyglot = media.image(fmt) + media.PAYLOAD
        r = await upload(api, ada, polyglot, name)
        assert r.status_code == 201, r.text
        served = await api.http.get(r.json()["url"], headers=api.bearer(ada))
        assert media.PAYLOAD not in served.content
        assert b"<script" not in served.content


async def test_html_and_svg_are_refused_whatever_their_name(api: Api, settings: Settings) -> None:
    (ada,) = await login(api, "ada")
    for data, name, claimed in (
        (media.HTML, "evil.png", "image/png"),
        (media.HTML, "page.html", "text/html"),
        (media.SVG, "logo.svg", "image/svg+xml"),
        (media.XML_SVG, "logo.png", "image/png"),
        (b"  \n<script>alert(1)</script>", "notes.txt", "text/plain"),
    ):
        r = await upload(api, ada, data, name, content_type=claimed)
        assert r.status_code == 415, (name, r.text)
        assert r.json()["error"]["code"] == "UNSUPPORTED_FILE_TYPE"
        assert r.json()["error"]["field"] == "file"
    assert stored_files(settings) == []


async def test_allow_list_is_by_content_and_configurable(tmp_path: Path) -> None:
    settings = isolated_settings(
        tmp_path / "var",
        upload_allowed_types="txt,zip",
    )
    async for api in open_api(settings):
        (ada,) = await login(api, "ada")
        refused = await upload(api, ada, media.PDF, "report.pdf", content_type="application/pdf")
        assert refused.status_code == 415
        assert "txt, zip" in refused.json()["error"]["message"]
        elf = await upload(api, ada, b"\x7fELF\x02\x01\x01" + b"\x00" * 64, "tool.txt")
        assert elf.status_code == 415
        # A zip claimed to be a PDF: accepted as what it is.
        archive = io.BytesIO()
        import zipfile

        with zipfile.ZipFile(archive, "w") as z:
            z.writestr("a.txt", "hello")
        ok = await upload(
            api, ada, archive.getvalue(), "report.pdf", content_type="application/pdf"
        )
        assert ok.status_code == 201, ok.text
        assert ok.json()["type"] == "application/zip"
        assert ok.json()["name"] == "report.pdf.zip"


async def test_other_files_are_downloads_with_a_safe_name(api: Api) -> None:
    (ada,) = await login(api, "ada")
    r = await upload(api, ada, media.PDF, "Résumé; final.pdf", content_type="text/html")
    assert r.status_code == 201, r.text
    assert r.json()["type"] == "application/pdf"
    assert r.json()["thumbnail"] is False
    served = await api.http.get(r.json()["url"], headers=api.bearer(ada))
    assert served.content == media.PDF
    assert served.headers["content-type"] == "application/pdf"
    assert served.headers["x-content-type-options"] == "nosniff"
    assert served.headers["content-security-policy"] == "default-src 'none'; sandbox"
    disposition = served.headers["content-disposition"]
    assert disposition == (
        'attachment; filename="R_sum__ final.pdf"; '
        "filename*=UTF-8''R%C3%A9sum%C3%A9%3B%20final.pdf"
    )
    assert (
        await api.http.get(f"{r.json()['url']}/thumbnail", headers=api.bearer(ada))
    ).status_code == 404
    text = await upload(api, ada, "héllo <b>world</b>\n".encode(), "note.txt")
    assert text.status_code == 201, text.text
    served = await api.http.get(text.json()["url"], headers=api.bearer(ada))
    assert served.headers["content-type"] == "text/plain; charset=utf-8"
    assert served.headers["content-disposition"].startswith("attachment;")


async def test_paths_in_file_names_are_dropped(api: Api, settings: Settings) -> None:
    (ada,) = await login(api, "ada")
    names = {}
    for name in ("../../etc/passwd", "..\\..\\x", "/abs/.hidden", "a\u202eb.txt", "..", ""):
        r = await upload(api, ada, b"plain words\n", name)
        assert r.status_code == 201, (name, r.text)
        names[name] = r.json()["name"]
    assert names["../../etc/passwd"] == "passwd.txt"
    assert names["..\\..\\x"] == "x.txt"
    assert names["/abs/.hidden"] == "hidden.txt"
    assert names["a\u202eb.txt"] == "ab.txt"
    assert names[".."] == "file.txt"
    root = settings.effective_upload_dir.resolve()
    for path in stored_files(settings):
        assert path.resolve().is_relative_to(root)
        assert len(path.name) == 32  # random keys, never the client's name
    assert not (settings.data_dir / "etc").exists()


async def small_limits(tmp_path: Path, **extra: Any) -> AsyncIterator[Api]:
    settings = isolated_settings(
        tmp_path / "var",
        **extra,
    )
    async for api in open_api(settings):
        yield api


async def test_size_limit_is_enforced_while_streaming(tmp_path: Path) -> None:
    async for api in small_limits(tmp_path, upload_max_bytes=4096):
        (ada,) = await login(api, "ada")
        settings = api.services.settings
        fits = await upload(api, ada, b"a" * 4096, "fits.txt")
        assert fits.status_code == 201, fits.text
        over = await upload(api, ada, b"a" * 4097, "over.txt")
        assert over.status_code == 413
        assert over.json()["error"] == {
            "code": "FILE_TOO_LARGE",
            "message": "the file is larger than 4096 bytes",
            "field": "file",
            "max_bytes": 4096,
        }

        # No Content-Length: the body arrives in chunks and is cut off past the limit.
        sent = 0

        async def endless() -> AsyncIterator[bytes]:
            nonlocal sent
            yield b'--b\r\nContent-Disposition: form-data; name="file"; filename="x"\r\n\r\n'
            for _ in range(10_000):
                sent += 1024
                yield b"x" * 1024

        streamed = await api.http.post(
            "/api/upload",
            content=endless(),
            headers={**api.bearer(ada), "Content-Type": "multipart/form-data; boundary=b"},
        )
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "FILE_TOO_LARGE"
        assert sent < 10_000 * 1024
        # A declared length past the limit is refused before reading.
        declared = await api.http.post(
            "/api/upload",
            content=b"x" * 100,
            headers={
                **api.bearer(ada),
                "Content-Type": "multipart/form-data; boundary=b",
                "Content-Length": str(10**9),
            },
        )
        assert declared.status_code == 413
        assert scratch_files(settings) == []
        assert len(stored_files(settings)) == 1


async def test_oversized_image_dimensions_are_refused(tmp_path: Path) -> None:
    async for api in small_limits(tmp_path, upload_max_pixels=10_000):
        (ada,) = await login(api, "ada")
        ok = await upload(api, ada, media.image("PNG", (100, 100)), "ok.png")
        assert ok.status_code == 201, ok.text
        big = await upload(api, ada, media.image("PNG", (101, 100)), "big.png")
        assert big.status_code == 413
        assert big.json()["error"]["code"] == "IMAGE_TOO_LARGE"
        assert big.json()["error"]["max_pixels"] == 10_000
        assert "10100 pixels" in big.json()["error"]["message"]


async def test_decompression_bombs_are_refused(api: Api, settings: Settings) -> None:
    (ada,) = await login(api, "ada")
    # 8,000 x 8,000: 64 MB of pixels in a few dozen kilobytes, past the 40 MP default.
    bomb = media.png_bomb(8000, 8000)
    assert len(bomb) < 200_000
    r = await upload(api, ada, bomb, "bomb.png")
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "IMAGE_TOO_LARGE"
    # 30,000 x 30,000 claimed by a header: Pillow's own bomb check fires while opening.
    r = await upload(api, ada, media.png_header_only(30_000, 30_000), "huge.png")
    assert r.status_code == 413
    assert r.json()["error"]["code"] == "IMAGE_TOO_LARGE"
    assert stored_files(settings) == []


def progressive_jpeg(extra_scans: int) -> bytes:
    """A small progressive JPEG with its last scan repeated ``extra_scans`` times: each
    repeat is a few bytes, and each costs the decoder a pass over every block."""
    out = io.BytesIO()
    Image.new("RGB", (64, 48), (120, 30, 200)).save(out, "JPEG", progressive=True)
    data = out.getvalue()
    last, end = data.rfind(b"\xff\xda"), data.rfind(b"\xff\xd9")
    return data[:end] + data[last:end] * extra_scans + data[end:]


async def test_jpegs_with_too_many_scans_are_refused_before_decoding(api: Api) -> None:
    (ada,) = await login(api, "ada")
    ordinary = await upload(api, ada, progressive_jpeg(0), "progressive.jpg")
    assert ordinary.status_code == 201, ordinary.text
    # A few kilobytes here; five megabytes of such scans over 40 megapixels would keep
    # a core busy for a quarter of an hour.
    bomb = progressive_jpeg(200)
    assert len(bomb) < 20_000
    r = await upload(api, ada, bomb, "scans.jpg")
    assert r.status_code == 422, r.text
    assert r.json()["error"]["code"] == "INVALID_IMAGE"
    assert "100 progressive scans" in r.json()["error"]["message"]
    # Stray bytes before a marker, which decoders skip, do not hide the scans after it.
    first = bomb.find(b"\xff\xda")
    hidden = await upload(api, ada, bomb[:first] + b"\x00\x00" + bomb[first:], "junk.jpg")
    assert hidden.status_code == 422, hidden.text
    assert hidden.json()["error"]["code"] == "INVALID_IMAGE"


async def test_a_malformed_exif_block_loses_only_its_metadata(api: Api) -> None:
    (ada,) = await login(api, "ada")
    photo = media.image("JPEG", (80, 40), exif=True, orientation=6)
    # The camera model's tag renumbered as XResolution, a number: the text it holds
    # cannot be written back, which is what Pillow's exif_transpose tries to do.
    malformed = photo.replace(b"\x01\x10\x00\x02", b"\x01\x1a\x00\x02", 1)
    assert malformed != photo
    r = await upload(api, ada, malformed, "odd-camera.jpg")
    assert r.status_code == 201, r.text
    assert (r.json()["width"], r.json()["height"]) == (40, 80)
    served = (await api.http.get(r.json()["url"], headers=api.bearer(ada))).content
    assert b"SpyCam" not in served
    with Image.open(io.BytesIO(served)) as after:
        assert dict(after.getexif()) == {}


async def test_broken_images_and_empty_files(api: Api) -> None:
    (ada,) = await login(api, "ada")
    truncated = media.image("PNG", (50, 50))[:60]
    r = await upload(api, ada, truncated, "cut.png")
    assert r.status_code == 422
    assert r.json()["error"]["code"] == "INVALID_IMAGE"
    empty = await upload(api, ada, b"", "empty.txt")
    assert empty.status_code == 422
    assert empty.json()["error"]["code"] == "VALIDATION_ERROR"
    missing = await api.http.post(
        "/api/upload", files={"other": ("a.txt", b"x")}, headers=api.bearer(ada)
    )
    assert missing.status_code == 422
    assert missing.json()["error"]["field"] == "file"
    not_multipart = await api.http.post("/api/upload", json={"file": "x"}, headers=api.bearer(ada))
    assert not_multipart.status_code == 422


async def test_a_body_cut_before_its_closing_boundary_stores_nothing(
    api: Api, settings: Settings
) -> None:
    (ada,) = await login(api, "ada")
    head = b'--b\r\nContent-Disposition: form-data; name="file"; filename="notes.txt"\r\n\r\n'
    headers = {**api.bearer(ada), "Content-Type": "multipart/form-data; boundary=b"}
    whole = await api.http.post(
        "/api/upload", content=head + b"the whole text\r\n--b--\r\n", headers=headers
    )
    assert whole.status_code == 201, whole.text
    assert whole.json()["size"] == len(b"the whole text")
    # A proxy or client that stops sending mid-file, with the length it had so far.
    for cut in (b"the whole te", b"the whole text\r\n--"):
        r = await api.http.post("/api/upload", content=head + cut, headers=headers)
        assert r.status_code == 422, (cut, r.text)
        assert r.json()["error"]["code"] == "VALIDATION_ERROR"
        assert r.json()["error"]["field"] == "file"
    assert len(stored_files(settings)) == 1
    assert scratch_files(settings) == []


async def test_only_the_uploader_and_members_of_its_conversation_read_it(api: Api) -> None:
    ada, bob, eve = await login(api, "ada", "bob", "eve")
    room = await api.http.post(
        "/api/conversations", json={"type": "room", "name": "team"}, headers=api.bearer(ada)
    )
    rid = room.json()["id"]
    joined = await api.http.post(f"/api/conversations/{rid}/join", headers=api.bearer(bob))
    assert joined.status_code == 200
    private = (await upload(api, ada, media.image("PNG"), "me.png")).json()
    shared = (await upload(api, ada, media.image("PNG"), "us.png", conversation_id=rid)).json()
    assert shared["conversation_id"] == rid

    async def status(token: str, path: str) -> tuple[int, Any]:
        r = await api.http.get(path, headers=api.bearer(token))
        return r.status_code, r.json() if r.status_code != 200 else None

    missing = await status(eve, "/api/uploads/999999")
    assert missing[0] == 404
    for path in ("", "/thumbnail", "/info"):
        assert (await status(ada, f"{private['url']}{path}"))[0] == 200
        assert (await status(bob, f"{private['url']}{path}")) == missing
        assert (await status(bob, f"{shared['url']}{path}"))[0] == 200
        assert (await status(eve, f"{shared['url']}{path}")) == missing
    # Binding to a conversation needs its membership, refused like a missing one.
    outsider = await upload(api, eve, media.image("PNG"), "x.png", conversation_id=rid)
    assert outsider.status_code == 404
    assert outsider.json()["error"]["code"] == "NOT_FOUND"
    anonymous = await api.http.get(shared["url"])
    assert anonymous.status_code == 401


async def test_upload_is_in_the_openapi_document(api: Api) -> None:
    doc = (await api.http.get("/openapi.json")).json()
    post = doc["paths"]["/api/upload"]["post"]
    schema = post["requestBody"]["content"]["multipart/form-data"]["schema"]
    assert schema["properties"]["file"]["format"] == "binary"
    assert "201" in post["responses"]
    assert "/api/uploads/{upload_id}" in doc["paths"]
    assert "/api/me/export" in doc["paths"]
    assert "UploadOut" in doc["components"]["schemas"]
