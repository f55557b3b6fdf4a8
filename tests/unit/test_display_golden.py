"""The golden display sample captured from the lab's real Spice server
(``scripts/capture-display-sample.py``): the first full-screen image of atp-vm1 and QEMU's
screendump of the same still screen. The codecs decode it (issue 12); here its layout is
checked against what the protocol and the research notes say the server sends."""

from __future__ import annotations

import json
import struct
from pathlib import Path

from PIL import Image

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "spice" / "display"
STEM = "atp-vm1-first-image-type101-720x400"
LZ_HEADER = struct.Struct(">IIIIIII")  # magic, version, type, width, height, stride, top_down


def test_the_first_image_is_one_lz_rgb32_picture_of_the_whole_screen() -> None:
    meta = json.loads((SAMPLES / f"{STEM}.json").read_text())
    payload = (SAMPLES / f"{STEM}.bin").read_bytes()
    (data_size,) = struct.unpack_from("<I", payload)
    assert data_size == len(payload) - 4  # BinaryData: u32 size, then the stream
    magic, version, kind, width, height, stride, top_down = LZ_HEADER.unpack_from(payload, 4)
    assert (magic, version) == (0x20205A4C, 0x00010001)  # "  ZL", 1.1
    assert kind == 8 and top_down == 1  # LZ_IMAGE_TYPE_RGB32, rows top first
    assert (width, height, stride) == (meta["width"], meta["height"], meta["width"] * 4)
    assert meta["box"] == [0, 0, height, width] and meta["image_type"] == 101  # LZ_RGB
    with Image.open(SAMPLES / f"{STEM}.screendump.png") as reference:
        assert reference.size == (width, height)
