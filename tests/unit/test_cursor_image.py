"""Cursor shapes of every type decoded to RGBA (hand-built bytes with known pixels), and
a cursor drawn onto a picture: blended, inverted, clipped at the edges."""

from __future__ import annotations

import struct

import numpy as np
import pytest

from atp_notebook.spice.cursor_image import CursorImage, composite_cursor, decode_cursor
from atp_notebook.spice.proto.cursor import CursorShape, CursorType, cursor_data_size

T, K, W, I = (0, 0, 0, 0), (0, 0, 0, 255), (255, 255, 255, 255), "invert"  # noqa: E741
RED, GREEN, BLUE = (255, 0, 0, 255), (0, 255, 0, 255), (0, 0, 255, 255)


def shape(kind: CursorType, width: int, height: int, data: bytes,
          hot: tuple[int, int] = (0, 0)) -> CursorShape:
    assert len(data) == cursor_data_size(kind, width, height)
    return CursorShape(1, kind, width, height, hot[0], hot[1], data)


def expect(image: CursorImage, rows: list[list[object]]) -> None:
    """Compare pixel by pixel: a colour tuple, or I where the cursor inverts."""
    want_invert = np.array([[p == I for p in row] for row in rows])
    assert np.array_equal(image.invert, want_invert)
    got = image.rgba.tolist()
    for y, row in enumerate(rows):
        for x, pixel in enumerate(row):
            if pixel != I:
                assert tuple(got[y][x]) == pixel, (x, y)


def u32s(*values: int) -> bytes:
    return struct.pack(f"<{len(values)}I", *values)


def test_alpha_is_bgra_straight() -> None:
    data = u32s(0xFFFF0000, 0x8000FF00, 0x00000000, 0xFF0000FF)
    image = decode_cursor(shape(CursorType.ALPHA, 2, 2, data, hot=(1, 1)))
    expect(image, [[RED, (0, 255, 0, 128)], [T, BLUE]])
    assert (image.width, image.height, image.hotspot) == (2, 2, (1, 1))
    assert image.rgba.dtype == np.uint8


def test_alpha_premultiplied_is_undone_on_request() -> None:
    data = u32s(0x80400000, 0x00000000)  # half-transparent red at half intensity
    image = decode_cursor(shape(CursorType.ALPHA, 2, 1, data), premultiplied=True)
    expect(image, [[(127, 0, 0, 128), T]])


def test_mono_and_xor_masks() -> None:
    # 9 px wide: rows padded to 2 bytes; AND mask rows then XOR mask rows, MSB first.
    # row 0: AND 1 0 0 1 1.. (pixel 8 AND=1), XOR 0 0 1 1 0..
    and_mask = bytes([0b10011111, 0b10000000, 0xFF, 0x80])
    xor_mask = bytes([0b00110000, 0b10000000, 0x00, 0x00])
    image = decode_cursor(shape(CursorType.MONO, 9, 2, and_mask + xor_mask))
    expect(image, [[T, K, W, I, T, T, T, T, I], [T] * 9])


def test_color4_palette_nibbles_and_mask() -> None:
    pixels = bytes([0x01, 0x20, 0x30])  # 3 px wide, rows padded: (0, 1, 2) then (3)
    palette = u32s(0xFF0000, 0x00FF00, 0x0000FF, 0xFFFFFF, *([0] * 12))
    mask = bytes([0b00011000])  # flat over 4 pixels: pixel 3 (white) and 4
    data = pixels[:2] + pixels[2:3] + bytes(1) + palette + mask
    image = decode_cursor(shape(CursorType.COLOR4, 3, 2, data))
    # row 1: pixel 3 = index 3 (white, masked: inverts), pixel 4 = index 0 (red, masked:
    # transparent), pixel 5 index 0 opaque
    expect(image, [[RED, GREEN, BLUE], [I, T, RED]])


def test_color8_palette() -> None:
    palette = u32s(*[0] * 256)
    palette = u32s(0x123456) + palette[4:20] + u32s(0xFFFFFF) + palette[24:]
    data = bytes([0, 5, 5, 0]) + palette + bytes([0b01000000])
    image = decode_cursor(shape(CursorType.COLOR8, 2, 2, data))
    expect(image, [[(0x12, 0x34, 0x56, 255), I], [W, (0x12, 0x34, 0x56, 255)]])


def test_color16_x555() -> None:
    data = struct.pack("<4H", 0x7C00, 0x03E0, 0x7FFF, 0x001F) + bytes([0b00110000])
    image = decode_cursor(shape(CursorType.COLOR16, 4, 1, data))
    expect(image, [[(248, 0, 0, 255), (0, 248, 0, 255), I, T]])


def test_color24_bgr() -> None:
    data = bytes([0, 0, 255, 255, 255, 255, 255, 0, 0]) + bytes([0b01000000])
    image = decode_cursor(shape(CursorType.COLOR24, 3, 1, data))
    expect(image, [[RED, I, BLUE]])


def test_color32_with_its_and_mask() -> None:
    data = u32s(0xFF0000, 0xFFFFFF, 0xFFFFFF, 0x00FF00) + bytes([0b01010000])
    image = decode_cursor(shape(CursorType.COLOR32, 2, 2, data))
    expect(image, [[RED, I], [W, T]])


@pytest.mark.parametrize("kind", list(CursorType))
@pytest.mark.parametrize(("width", "height"), [(0, 0), (0, 3), (3, 0), (1, 1), (7, 3), (64, 64)])
def test_every_type_and_size_decodes_to_its_shape(kind: CursorType, width: int,
                                                  height: int) -> None:
    data = bytes(i * 37 % 256 for i in range(cursor_data_size(kind, width, height)))
    image = decode_cursor(shape(kind, width, height, data))
    assert image.rgba.shape == (height, width, 4)
    assert image.invert.shape == (height, width)


PICTURE = np.full((4, 5, 3), 100, np.uint8)


def test_composite_blends_inverts_and_places_the_hot_spot() -> None:
    rgba = np.array([[RED, (0, 0, 255, 128)], [T, K]], np.uint8)
    invert = np.array([[False, False], [False, True]])
    image = CursorImage(rgba, invert, (1, 1))
    out = composite_cursor(PICTURE, image, (2, 2))  # top-left corner lands at (1, 1)
    assert out[1, 1].tolist() == [255, 0, 0]
    assert out[1, 2].tolist() == [50, 50, 178]  # (255*128 + 100*127) / 255, rounded
    assert out[2, 1].tolist() == [100, 100, 100]
    assert out[2, 2].tolist() == [155, 155, 155]  # inverted
    changed = np.argwhere(np.any(out != PICTURE, axis=2)).tolist()
    assert changed == [[1, 1], [1, 2], [2, 2]]
    assert PICTURE[1, 1].tolist() == [100, 100, 100]  # a copy, the input untouched


@pytest.mark.parametrize(("position", "changed"), [
    ((0, 0), [[0, 0]]),  # hot spot (1, 1) at the corner: three pixels off-screen
    ((5, 4), [[3, 4]]),  # bottom-right corner, partly off
    ((-5, 0), []),
    ((100, 100), []),
])
def test_composite_clips_at_the_edges(position: tuple[int, int],
                                      changed: list[list[int]]) -> None:
    image = CursorImage(np.full((2, 2, 4), 255, np.uint8), np.zeros((2, 2), bool), (1, 1))
    out = composite_cursor(PICTURE, image, position)
    assert np.argwhere(np.any(out != PICTURE, axis=2)).tolist() == changed


def test_composite_keeps_a_picture_s_alpha_channel() -> None:
    picture = np.zeros((2, 2, 4), np.uint8)
    picture[..., 3] = 7
    image = CursorImage(np.full((1, 1, 4), 255, np.uint8), np.zeros((1, 1), bool), (0, 0))
    out = composite_cursor(picture, image, (1, 1))
    assert out[1, 1].tolist() == [255, 255, 255, 7]


def test_composite_onto_a_bgr_picture_swaps_the_cursor_s_colours() -> None:
    image = CursorImage(np.array([[RED]], np.uint8), np.zeros((1, 1), bool), (0, 0))
    out = composite_cursor(PICTURE, image, (0, 0), order="bgr")
    assert out[0, 0].tolist() == [0, 0, 255]


def test_the_shape_as_a_pil_image() -> None:
    data = u32s(0xFFFF0000, 0x00000000)
    pil = decode_cursor(shape(CursorType.ALPHA, 2, 1, data)).to_pil()
    assert (pil.mode, pil.size) == ("RGBA", (2, 1))
    assert [pil.getpixel((0, 0)), pil.getpixel((1, 0))] == [RED, T]
