"""vm.cursor's snapshots and the cursor drawn into a screenshot (draw_cursor: B,G,R,X
pixels, table-driven: inside, at each edge, larger than the screen, hidden, no shape, a
region's origin), and the lab's known shape as atp-cursor.c draws it."""

from __future__ import annotations

import numpy as np
import pytest

from atp_notebook.lab.cursor_guest import known_cursor_rgba
from atp_notebook.spice.cursor_facade import CursorSnapshot, draw_cursor
from atp_notebook.spice.cursor_image import decode_cursor
from atp_notebook.spice.proto.cursor import CursorShape, CursorType

SCREEN = np.zeros((6, 8, 4), np.uint8)  # 8x6, B,G,R,X all 0
SCREEN[..., 3] = 9


def solid(width: int, height: int, hot: tuple[int, int] = (0, 0),
          argb: int = 0xFFFF0000) -> CursorShape:
    """An opaque ALPHA cursor of one colour (red by default)."""
    data = argb.to_bytes(4, "little") * (width * height)
    return CursorShape(7, CursorType.ALPHA, width, height, hot[0], hot[1], data)


def snapshot(shape: CursorShape | None, position: tuple[int, int],
             visible: bool = True) -> CursorSnapshot:
    return CursorSnapshot(position, visible, shape,
                          None if shape is None else decode_cursor(shape))


def covered(pixels: np.ndarray) -> list[tuple[int, int]]:
    """(x, y) of the pixels the cursor changed, in row order."""
    return [(int(x), int(y)) for y, x in np.argwhere(np.any(pixels != SCREEN, axis=2))]


def box(left: int, top: int, right: int, bottom: int) -> list[tuple[int, int]]:
    return [(x, y) for y in range(top, bottom) for x in range(left, right)]


@pytest.mark.parametrize(("shape", "position", "origin", "want"), [
    (solid(2, 2), (3, 2), (0, 0), box(3, 2, 5, 4)),
    (solid(2, 2, hot=(1, 1)), (3, 2), (0, 0), box(2, 1, 4, 3)),  # top left = position - hot
    (solid(3, 3, hot=(1, 1)), (0, 0), (0, 0), box(0, 0, 2, 2)),  # clipped top left
    (solid(3, 3), (7, 5), (0, 0), box(7, 5, 8, 6)),  # clipped bottom right
    (solid(3, 3), (-3, 0), (0, 0), []),  # wholly off the left edge
    (solid(3, 3), (8, 6), (0, 0), []),  # wholly off the bottom right
    (solid(20, 16, hot=(10, 8)), (4, 3), (0, 0), box(0, 0, 8, 6)),  # larger than the screen
    (solid(512, 512, hot=(0, 0)), (0, 0), (0, 0), box(0, 0, 8, 6)),  # the largest allowed
    (solid(2, 2), (5, 4), (4, 3), box(1, 1, 3, 3)),  # a region at (4, 3): moved by its origin
])
def test_draw_cursor_places_and_clips(shape: CursorShape, position: tuple[int, int],
                                      origin: tuple[int, int],
                                      want: list[tuple[int, int]]) -> None:
    out = draw_cursor(SCREEN, snapshot(shape, position), origin)
    assert covered(out) == want
    for x, y in want:
        assert out[y, x].tolist() == [0, 0, 255, 9]  # red in B,G,R; X kept
    assert not SCREEN[..., :3].any()  # the input untouched


@pytest.mark.parametrize("hidden", [
    snapshot(solid(2, 2), (1, 1), visible=False),  # HIDE: the shape is kept, not drawn
    snapshot(None, (1, 1)),  # visible flag but no shape (a VGA guest's INIT)
])
def test_a_cursor_not_shown_is_not_drawn(hidden: CursorSnapshot) -> None:
    assert not hidden.shown
    out = draw_cursor(SCREEN, hidden)
    assert np.array_equal(out, SCREEN) and out is not SCREEN


def test_half_transparent_pixels_blend() -> None:
    out = draw_cursor(SCREEN, snapshot(solid(1, 1, argb=0x80FFFFFF), (0, 0)))
    assert out[0, 0].tolist() == [128, 128, 128, 9]  # 255 * 128 / 255 over black


def test_snapshot_properties_and_equality() -> None:
    a = snapshot(solid(4, 3, hot=(1, 2)), (10, 20))
    assert (a.hotspot, a.size, a.top_left, a.shown) == ((1, 2), (4, 3), (9, 18), True)
    pil = a.shape
    assert pil is not None and (pil.mode, pil.size) == ("RGBA", (4, 3))
    assert pil.getpixel((0, 0)) == (255, 0, 0, 255)
    assert a == snapshot(solid(4, 3, hot=(1, 2)), (10, 20))
    assert a != snapshot(solid(4, 3, hot=(1, 2)), (11, 20))  # moved
    assert a != snapshot(solid(4, 3, hot=(1, 2)), (10, 20), visible=False)  # hidden
    assert a != snapshot(solid(4, 3, hot=(1, 1)), (10, 20))  # another shape
    assert repr(a) == "<CursorSnapshot at (10, 20) visible, alpha 4x3 hotspot (1, 2)>"
    none = snapshot(None, (0, 0))
    assert (none.shape, none.hotspot, none.size, none.top_left) == (None, None, None, None)
    assert repr(none) == "<CursorSnapshot at (0, 0) visible, no shape>"


def test_the_known_shape_matches_atp_cursor_c() -> None:
    rgba = known_cursor_rgba()
    assert rgba.shape == (64, 64, 4)
    # atp_cursor_pixel(): opaque 40x48 block, colour from the place, notch at the top right
    assert rgba[0, 0].tolist() == [0, 0, 0x80, 255]
    assert rgba[47, 39].tolist() == [(39 * 6) & 0xFF, (47 * 5) & 0xFF, 0x80 | (86 & 0x3F), 255]
    for x, y in ((40, 0), (0, 48), (30, 0), (39, 9), (63, 63)):
        assert rgba[y, x].tolist() == [0, 0, 0, 0], (x, y)
    assert rgba[10, 30, 3] == 255  # just below the notch
    assert int((rgba[..., 3] == 255).sum()) == 40 * 48 - 10 * 10
