"""DisplayRenderer against a lying server: every case is a RemoteProtocolError whose text
names the message and what was wrong, nothing is written outside a surface, and the same
renderer draws correctly afterwards. The GLZ window is shared by the session's channels on
purpose: an image that failed there fails the images that copy from it on any channel,
while the window goes on serving the others."""

from __future__ import annotations

import random
import struct
from collections.abc import Callable

import numpy as np
import pytest

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.codecs import GlzWindow
from atp_notebook.spice.display import image_source
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.common import ChannelEvent
from atp_notebook.spice.proto.constants import DisplayMsg, SurfaceFlags
from atp_notebook.spice.proto.display import SurfaceCreated
from tests.unit.display_messages import Body, image_bytes
from tests.unit.glz_streams import GlzTestEncoder
from tests.unit.renderer_messages import (
    CACHE_ME,
    CACHE_REPLACE_ME,
    cached,
    draw_copy,
    glz_image,
    lz32,
    parse,
    renderer_with,
    screen,
    surface_image,
    words,
)

IMG = words([[0x00112233, 0x00445566, 0x00778899],
             [0x00AABBCC, 0x00DDEEFF, 0x00010203]])
BG = 0x00303030


def _glz_missing_reference() -> ChannelEvent:
    rng = random.Random(5)
    encoder = GlzTestEncoder(1000)
    pixels = [rng.getrandbits(24) for _ in range(6)]
    encoder.encode(8, 3, 2, pixels, rng, cross=False)  # image 0: never delivered
    second = encoder.encode(8, 3, 2, pixels, rng, literal_rate=0.0)
    assert second.refs.get("cross")
    return draw_copy(glz_image(1, second.stream, 3, 2), (0, 0, 2, 3))


Case = Callable[[], list[ChannelEvent]]
CASES: dict[str, tuple[Case, str]] = {
    "a draw on a surface that does not exist": (
        lambda: [draw_copy(lz32(1, IMG), (0, 0, 2, 3), surface=4)],
        "DRAW_COPY: draw on unknown surface 4"),
    "a box past the surface's right edge": (
        lambda: [draw_copy(lz32(1, IMG), (0, 4, 2, 7))],
        r"DRAW_COPY: box \(4, 0, 7, 2\) is not inside surface 0 \(6x4\)"),
    "a box above the surface": (
        lambda: [parse(DisplayMsg.DRAW_FILL, Body().base(0, (-1, 0, 2, 3)).u8(1).u32(5)
                       .u16(8).mask().finish())],
        r"DRAW_FILL: box \(0, -1, 3, 2\) is not inside surface 0"),
    "a box turned inside out": (
        lambda: [parse(DisplayMsg.DRAW_BLACKNESS, Body().base(0, (3, 0, 1, 3)).mask().finish())],
        "DRAW_BLACKNESS: box .* is not inside"),
    "a COPY_BITS source past the surface": (
        lambda: [parse(DisplayMsg.COPY_BITS, Body().base(0, (0, 0, 2, 2)).point(5, 3).finish())],
        "COPY_BITS: .*source .* is not inside surface 0"),
    "FROM_CACHE of an image never cached": (
        lambda: [draw_copy(cached(0x77, 3, 2), (0, 0, 2, 3))],
        "DRAW_COPY: .*FROM_CACHE of 0x77, which is not cached"),
    "a SURFACE image of a surface that does not exist": (
        lambda: [draw_copy(surface_image(9, 3, 2), (0, 0, 2, 3))],
        "DRAW_COPY: a SURFACE image names surface 9"),
    "a source area past the image": (
        lambda: [draw_copy(lz32(1, IMG), (0, 0, 2, 3), (0, 1, 2, 4))],
        r"DRAW_COPY: .*source area \(1, 0, 4, 2\) is not inside the 3x2 source"),
    "an LZ stream cut short": (
        lambda: [draw_copy(lz32(1, IMG, cut=4), (0, 0, 2, 3))],
        "DRAW_COPY: lz image data is bad .*runs past the end"),
    "an image bigger than its descriptor says": (
        lambda: [draw_copy(lz32(1, IMG, size=(2, 2)), (0, 0, 2, 2))],
        "DRAW_COPY: .*3x2 image, the descriptor says 2x2"),
    "a bigger image than the descriptor, off the fast path": (
        lambda: [draw_copy(lz32(1, IMG, size=(2, 2)), (0, 0, 2, 2), clip=[(0, 0, 1, 1)])],
        "DRAW_COPY: .*3x2 image, the descriptor says 2x2"),
    "a source image larger than any real one": (
        lambda: [draw_copy(lz32(1, IMG, size=(9000, 8000)), (0, 0, 2, 3))],
        "DRAW_COPY: image 0x1 of 9000x8000 is larger than the 67108864 pixels"),
    "a mask larger than any real one": (
        lambda: [draw_copy(lz32(1, IMG), (0, 0, 2, 3), mask=image_bytes(
            5, 0, 9000, 8000, struct.pack("<BBIII", 1, 4, 9000, 8000, 0)
            + struct.pack("<I", 0)))],
        "DRAW_COPY: a mask of 9000x8000 is larger than"),
    "a GLZ image that copies from one never sent": (
        lambda: [_glz_missing_reference()],
        "DRAW_COPY: glz .*reference to image 0, which has not arrived"),
    "caching past the announced pixmap cache": (
        lambda: [draw_copy(lz32(1, IMG, CACHE_ME), (0, 0, 2, 3)),
                 draw_copy(lz32(2, IMG, CACHE_ME), (0, 0, 2, 3))],
        "DRAW_COPY: caching image 0x2 .* would pass the pixmap cache size"),
    "CACHE_REPLACE_ME of an image never cached": (
        lambda: [draw_copy(lz32(3, IMG, CACHE_REPLACE_ME), (0, 0, 2, 3))],
        "DRAW_COPY: CACHE_REPLACE_ME of 0x3, which is not cached"),
    "a mask that is not a 1-bit BITMAP": (
        lambda: [draw_copy(lz32(1, IMG), (0, 0, 2, 3), mask=lz32(2, IMG))],
        "DRAW_COPY: a mask image of type 101"),
    "a mask BITMAP of another size than its descriptor": (
        lambda: [draw_copy(lz32(1, IMG), (0, 0, 2, 3), mask=image_bytes(
            5, 0, 3, 2, struct.pack("<BBIII", 1, 4, 9, 2, 2) + struct.pack("<I", 0)
            + bytes(4)))],
        "DRAW_COPY: a mask BITMAP of 9x2, its descriptor says 3x2"),
    "a surface created twice": (
        lambda: [SurfaceCreated(0, 6, 4, 32, SurfaceFlags.PRIMARY)],
        "SURFACE_CREATE: surface 0 created twice"),
    "a surface past the memory cap": (
        lambda: [SurfaceCreated(1, 16384, 16384, 32, SurfaceFlags(0))],
        "SURFACE_CREATE: .*would take surfaces past"),
    "a surface of an unknown format": (
        lambda: [SurfaceCreated(1, 4, 4, 33, SurfaceFlags(0))],
        "SURFACE_CREATE: .*unknown format 33"),
    "destroying a surface that does not exist": (
        lambda: [parse(DisplayMsg.SURFACE_DESTROY, struct.pack("<I", 8))],
        "SURFACE_DESTROY: destroy of unknown surface 8"),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_hostile_draws_are_remote_errors_and_the_renderer_goes_on(name: str) -> None:
    make, error = CASES[name]
    r = renderer_with(6, 4, fill=BG, pixmap_cache_pixels=8, glz=GlzWindow(1000),
                      glz_timeout=0.0)
    events = make()
    with pytest.raises(RemoteProtocolError, match=error):
        for event in events:
            r.apply(event)
    assert r.primary is not None and r.primary.pixels.shape == (4, 6, 4)
    r.apply(draw_copy(lz32(9, IMG), (2, 3, 4, 6)))
    assert np.array_equal(screen(r)[2:4, 3:6], IMG)


def test_a_codec_failing_without_naming_it_is_still_a_remote_error(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*args: object, **kwargs: object) -> None:
        raise ValueError("boom")

    monkeypatch.setattr(image_source, "decode_image", broken)
    r = renderer_with(6, 4)
    with pytest.raises(RemoteProtocolError, match=r"DRAW_COPY: image 0x1 .*ValueError: boom"):
        r.apply(draw_copy(lz32(1, IMG), (0, 0, 2, 3)))
    with pytest.raises(RemoteProtocolError, match=r"DRAW_BLEND: image 0x1 .*ValueError"):
        r.apply(parse(DisplayMsg.DRAW_BLEND, Body().base(0, (0, 0, 2, 3)).ptr(lz32(1, IMG))
                      .rect(0, 0, 2, 3).u16(8).u8(1).mask().finish()))


def test_a_failed_glz_image_fails_what_copies_from_it_on_the_other_channel_only() -> None:
    rng = random.Random(8)
    encoder = GlzTestEncoder(1000)
    pixels = [rng.getrandbits(24) for _ in range(6)]
    first = encoder.encode(8, 3, 2, pixels, rng, cross=False)
    second = encoder.encode(8, 3, 2, pixels, rng, literal_rate=0.0)
    third = encoder.encode(8, 3, 2, [rng.getrandbits(24) for _ in range(6)], rng,
                           cross=False)
    assert second.refs.get("cross")
    window = GlzWindow(1000)
    channels = {}
    for ch in (0, 1):
        channels[ch] = DisplayRenderer(window, glz_timeout=5.0)
        channels[ch].apply(SurfaceCreated(0, 6, 4, 32, SurfaceFlags.PRIMARY))
    with pytest.raises(RemoteProtocolError, match="DRAW_COPY: glz image data is bad"):
        channels[0].apply(draw_copy(glz_image(1, first.stream[:-3], 3, 2), (0, 0, 2, 3)))
    with pytest.raises(RemoteProtocolError, match="reference to image 0, which failed"):
        channels[1].apply(draw_copy(glz_image(2, second.stream, 3, 2), (0, 0, 2, 3)))
    channels[1].apply(draw_copy(glz_image(3, third.stream, 3, 2), (2, 3, 4, 6)))
    expected = np.frombuffer(third.expected, dtype="<u4").reshape(2, 3)
    assert np.array_equal(screen(channels[1])[2:4, 3:6], expected)


@pytest.mark.parametrize("surface_id, box", [(0, (0, 4, 2, 7)), (5, (0, 0, 2, 3))],
                         ids=["box past the surface", "unknown surface"])
def test_a_refused_glz_draw_still_feeds_the_shared_window(surface_id: int,
                                                         box: tuple[int, int, int, int]) -> None:
    rng = random.Random(21)
    encoder = GlzTestEncoder(1000)
    pixels = [rng.getrandbits(24) for _ in range(6)]
    first = encoder.encode(8, 3, 2, pixels, rng, cross=False)
    second = encoder.encode(8, 3, 2, pixels, rng, literal_rate=0.0)
    assert second.refs.get("cross")
    window = GlzWindow(1000)
    channels = [DisplayRenderer(window, glz_timeout=0.0) for _ in range(2)]
    for r in channels:
        r.apply(SurfaceCreated(0, 6, 4, 32, SurfaceFlags.PRIMARY))
    with pytest.raises(RemoteProtocolError, match=r"DRAW_COPY: (box|draw on unknown)"):
        channels[0].apply(draw_copy(glz_image(1, first.stream, 3, 2), box, surface=surface_id))
    channels[1].apply(draw_copy(glz_image(2, second.stream, 3, 2), (2, 3, 4, 6)))
    expected = np.frombuffer(second.expected, dtype="<u4").reshape(2, 3)
    assert np.array_equal(screen(channels[1])[2:4, 3:6], expected)
