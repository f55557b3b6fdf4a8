"""Golden corpus: a real spice-server LZ image decodes to QEMU's screendump of the same screen."""

from __future__ import annotations

import struct
from pathlib import Path

from PIL import Image

from atp_notebook.spice.codecs import LzType, decode_lz

SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "spice" / "display"
NAME = "atp-vm1-first-image-type101-720x400"


def test_lz_rgb32_first_image_matches_screendump() -> None:
    raw = (SAMPLE / f"{NAME}.bin").read_bytes()
    (size,) = struct.unpack_from("<I", raw)
    img = decode_lz(memoryview(raw)[4 : 4 + size])
    assert (img.width, img.height, img.lz_type) == (720, 400, LzType.RGB32)
    with Image.open(SAMPLE / f"{NAME}.screendump.png") as ref:
        expected = ref.convert("RGB").tobytes()
    rgb = Image.frombuffer("RGB", (720, 400), bytes(img.pixels), "raw", "BGRX", 0, 1).tobytes()
    assert rgb == expected
