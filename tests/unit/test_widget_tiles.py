"""tiles.py: damage snapped to the tile grid, and tiles encoded as the browser reads them."""

from __future__ import annotations

import io

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.notebook.widget.tiles import (
    EncodedTile,
    TileFormat,
    bounding_box,
    damaged_tiles,
    encode_tile,
    frame_message,
    lossless_format,
    to_rgba,
)
from atp_notebook.spice.display.surfaces import Box

W, H = 720, 400  # the VGA text console

TILE_CASES = [
    ("nothing", [], []),
    ("one pixel", [Box(10, 10, 11, 11)], [Box(0, 0, 64, 64)]),
    ("a rect on the grid stays itself", [Box(64, 64, 128, 128)], [Box(64, 64, 128, 128)]),
    ("a rect across a grid line takes both cells", [Box(60, 0, 70, 5)], [Box(0, 0, 128, 64)]),
    ("the whole screen, last row and column clipped", [Box(0, 0, W, H)], [Box(0, 0, W, H)]),
    ("the bottom-right corner cell is clipped", [Box(W - 1, H - 1, W, H)],
     [Box(704, 384, W, H)]),
    ("off the screen is dropped", [Box(W, 0, W + 10, 10), Box(-5, -5, 0, 0)], []),
    ("partly off the screen is clipped", [Box(700, 390, 900, 900)], [Box(640, 384, W, H)]),
    ("empty rects are dropped", [Box(5, 5, 5, 9)], []),
    ("two cells of a row merge", [Box(0, 0, 1, 1), Box(64, 0, 65, 1)], [Box(0, 0, 128, 64)]),
    ("equal runs down the rows merge", [Box(0, 0, 1, 1), Box(0, 64, 1, 65)],
     [Box(0, 0, 64, 128)]),
    ("runs of different spans stay apart",
     [Box(0, 0, 128, 1), Box(0, 64, 64, 65)], [Box(0, 0, 128, 64), Box(0, 64, 64, 128)]),
    ("a run ending and starting again", [Box(0, 0, 1, 1), Box(0, 128, 1, 129)],
     [Box(0, 0, 64, 64), Box(0, 128, 64, 192)]),
    ("overlapping rects mark each cell once", [Box(0, 0, 100, 100), Box(50, 50, 120, 120)],
     [Box(0, 0, 128, 128)]),
    ("an L shape is two boxes", [Box(0, 0, 192, 64), Box(0, 64, 64, 192)],
     [Box(0, 0, 192, 64), Box(0, 64, 64, 192)]),
]


@pytest.mark.parametrize(("rects", "expected"), [c[1:] for c in TILE_CASES],
                         ids=[c[0] for c in TILE_CASES])
def test_damaged_tiles(rects: list[Box], expected: list[Box]) -> None:
    assert damaged_tiles(rects, W, H) == expected


def test_damaged_tiles_cover_every_damaged_pixel_and_stay_on_the_grid() -> None:
    rng = np.random.default_rng(7)
    for _ in range(50):
        rects = [Box(int(x), int(y), int(x + w), int(y + h)) for x, y, w, h in
                 rng.integers(0, [W, H, 90, 90], size=(int(rng.integers(1, 8)), 4))]
        boxes = damaged_tiles(rects, W, H, max_tiles=1000)
        covered = np.zeros((H, W), dtype=np.int32)
        for b in boxes:
            assert b.left % 64 == 0 and b.top % 64 == 0
            assert b.right % 64 == 0 or b.right == W
            assert b.bottom % 64 == 0 or b.bottom == H
            covered[b.top:b.bottom, b.left:b.right] += 1
        assert covered.max() == 1  # disjoint
        for r in rects:
            inside = r.intersect(Box(0, 0, W, H))
            if not inside.empty:
                assert covered[inside.top:inside.bottom, inside.left:inside.right].all()


def test_too_many_pieces_become_their_bounding_box() -> None:
    checker = [Box(x, y, x + 1, y + 1) for x in range(0, W, 128) for y in range(0, H, 128)]
    assert len(damaged_tiles(checker, W, H)) == 24  # 6 x 4 separate cells: the limit
    assert damaged_tiles(checker, W, H, max_tiles=23) == [Box(0, 0, 704, H)]


@pytest.mark.parametrize(("width", "height", "tile", "max_tiles"),
                         [(0, 400, 64, 24), (720, -1, 64, 24), (720, 400, 0, 24),
                          (720, 400, 64, 0)])
def test_damaged_tiles_refuses_bad_sizes(width: int, height: int, tile: int,
                                         max_tiles: int) -> None:
    with pytest.raises(InvalidArgument, match="must all be > 0"):
        damaged_tiles([], width, height, tile=tile, max_tiles=max_tiles)


def test_bounding_box() -> None:
    assert bounding_box([]) is None
    assert bounding_box([Box(3, 3, 3, 9)]) is None
    assert bounding_box([Box(1, 2, 3, 4), Box(10, 0, 11, 1)]) == Box(1, 0, 11, 4)


def _screen() -> np.ndarray:
    rng = np.random.default_rng(1)
    screen = rng.integers(0, 256, size=(H, W, 4), dtype=np.uint8)
    screen[..., 3] = 0  # X: whatever the server left there, never shown
    return screen


def test_rgba_swaps_blue_and_red_and_makes_alpha_opaque() -> None:
    pixels = np.array([[[1, 2, 3, 0], [10, 20, 30, 99]]], dtype=np.uint8)
    assert to_rgba(pixels) == bytes([3, 2, 1, 255, 30, 20, 10, 255])


def test_an_rgba_tile_is_exactly_its_box() -> None:
    screen = _screen()
    tile = encode_tile(screen, Box(64, 128, 100, 140), TileFormat.RGBA)
    got = np.frombuffer(tile.data, dtype=np.uint8).reshape(12, 36, 4)
    assert (got[..., :3] == screen[128:140, 64:100, 2::-1]).all()
    assert (got[..., 3] == 255).all()


def test_a_png_tile_decodes_to_exactly_its_box() -> None:
    screen = _screen()
    tile = encode_tile(screen, Box(0, 0, 64, 64), TileFormat.PNG)
    image = np.asarray(Image.open(io.BytesIO(tile.data)).convert("RGB"))
    assert (image == screen[:64, :64, 2::-1]).all()


def test_a_jpeg_tile_is_close_to_its_box() -> None:
    screen = np.zeros((H, W, 4), dtype=np.uint8)
    screen[:, :, 0] = np.arange(W, dtype=np.uint8)[None, :] // 3  # smooth blue ramp
    screen[:, :, 2] = 200
    tile = encode_tile(screen, Box(128, 64, 320, 192), TileFormat.JPEG, quality=90)
    decoded = simplejpeg.decode_jpeg(tile.data, colorspace="BGRX")
    assert decoded.shape == (128, 192, 4)
    diff = np.abs(decoded[..., :3].astype(int) - screen[64:192, 128:320, :3].astype(int))
    assert diff.mean() < 2.0


@pytest.mark.parametrize("box", [Box(0, 0, 0, 10), Box(700, 0, 730, 10), Box(-1, 0, 5, 5)])
def test_a_tile_outside_the_screen_is_refused(box: Box) -> None:
    with pytest.raises(InvalidArgument, match="not inside the 720x400 screen"):
        encode_tile(_screen(), box, TileFormat.RGBA)


def test_frame_message_lists_tiles_in_the_order_of_their_buffers() -> None:
    tiles = [EncodedTile(Box(0, 0, 64, 64), TileFormat.JPEG, b"j"),
             EncodedTile(Box(64, 0, 100, 10), TileFormat.RGBA, b"r")]
    content, buffers = frame_message(5, (W, H), tiles)
    assert content == {"type": "frame", "n": 5, "width": W, "height": H,
                       "tiles": [[0, 0, 64, 64, "jpeg"], [64, 0, 36, 10, "rgba"]]}
    assert buffers == [b"j", b"r"]


@pytest.mark.parametrize(("box", "choice", "expected"), [
    (Box(0, 0, 128, 128), "auto", TileFormat.RGBA),
    (Box(0, 0, 129, 128), "auto", TileFormat.PNG),
    (Box(0, 0, 720, 400), "auto", TileFormat.PNG),
    (Box(0, 0, 720, 400), "rgba", TileFormat.RGBA),
    (Box(0, 0, 8, 8), "png", TileFormat.PNG),
])
def test_lossless_format(box: Box, choice: str, expected: TileFormat) -> None:
    assert lossless_format(box, choice) is expected


@pytest.mark.parametrize("choice", ["jpeg", "webp", ""])
def test_a_lossy_or_unknown_lossless_format_is_refused(choice: str) -> None:
    with pytest.raises(InvalidArgument, match="use 'auto', 'rgba' or 'png'"):
        lossless_format(Box(0, 0, 8, 8), choice)
