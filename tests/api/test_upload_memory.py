"""An image upload's memory: the decoded pixels and at most one full-size copy at a time.

``DECODE_SLOTS`` bounds how many images a process decodes at once on the premise that
one costs about its decoded size; several full-size copies alive together (the decoded
image, a transposed one, a clean copy, the thumbnail's) would let two small files of
large dimensions take a multiple of that. Measured in a process of its own: the peak
resident size is a high-water mark that nothing else may have raised."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

SIDE = 4000
# Pillow keeps RGB and RGBA pixels in 4 bytes each.
DECODED = SIDE * SIDE * 4

# The high-water mark of this process's own memory (VmHWM; getrusage's would start from
# the parent's resident size, inherited through fork).
PROBE = """
import sys
from pathlib import Path
from palaver.services import imaging

def peak():
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM")

source, kind = Path(sys.argv[1]), sys.argv[2]
before = peak()
imaging.reencode(
    source, kind, source.parent / "clean", source.parent / "thumb",
    max_pixels=40_000_000, thumbnail_size=320,
)
print(peak() - before)
"""


def _peak_growth(source: Path, kind: str) -> int:
    done = subprocess.run(
        [sys.executable, "-c", PROBE, str(source), kind],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    )
    return int(done.stdout.strip())


@pytest.mark.parametrize(
    ("mode", "kind", "orientation"),
    [("RGBA", "png", None), ("RGB", "jpeg", None), ("RGB", "jpeg", 6), ("CMYK", "jpeg", 6)],
    ids=["png-alpha", "jpeg", "jpeg-rotated", "cmyk-rotated-converted"],
)
def test_an_image_costs_at_most_twice_its_decoded_size(
    tmp_path: Path, mode: str, kind: str, orientation: int | None
) -> None:
    source = tmp_path / f"source.{kind}"
    image = Image.new(mode, (SIDE, SIDE), (200, 40, 90, 30)[: len(mode)])
    if orientation is None:
        image.save(source)
    else:
        exif = Image.Exif()
        exif[0x0112] = orientation
        image.save(source, exif=exif)
    del image
    growth = _peak_growth(source, kind)
    # The decoded pixels plus one full-size copy (a transposed or converted image, or
    # the thumbnail's before it shrinks), with room for the encoders' buffers.
    assert growth < 2.5 * DECODED, f"{growth / DECODED:.2f} times the decoded size"
