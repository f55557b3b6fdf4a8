"""Damage rectangles to encoded tiles for the display widget (pure: numpy in, bytes out).

The display publishes damage as rectangles (``Frame.rects``); the widget sends only what
changed. :func:`damaged_tiles` snaps the damage to a grid of ``TILE`` px cells and merges
the marked cells into few rectangles (runs along a row, then equal runs down the rows):
snapping bounds the number of pieces whatever the server's draw pattern (QEMU's VGA path
draws 32-px strips, research/display.md §8), and a 64-px grid keeps JPEG's 8/16-px blocks
aligned across tiles. Past ``MAX_TILES`` pieces one bounding box is cheaper than many
small images (each JPEG has ~600 bytes of headers and tables, each tile a decode call in the
browser).

Tiles are encoded as JPEG (simplejpeg, straight from the surface's B,G,R,X bytes) while the
screen moves, and lossless once it is still: raw RGBA (what the browser's ``putImageData``
takes, no decoder on either side) for small tiles, PNG for large ones (:func:`lossless_format`).

Example::

    boxes = damaged_tiles([Box(10, 10, 20, 20)], width=720, height=400)  # [Box(0, 0, 64, 64)]
    tiles = [encode_tile(pixels, box, TileFormat.JPEG) for box in boxes]
    content, buffers = frame_message(7, (720, 400), tiles)
"""

from __future__ import annotations

import enum
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import simplejpeg
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.spice.display.surfaces import Box, Pixels

__all__ = [
    "MAX_TILES",
    "TILE",
    "EncodedTile",
    "TileFormat",
    "bounding_box",
    "damaged_tiles",
    "encode_tile",
    "frame_message",
    "lossless_format",
    "to_rgba",
]

TILE = 64
MAX_TILES = 24
JPEG_QUALITY = 80
# Exact tiles up to this many pixels go raw (64 KiB at most), larger ones as PNG. Measured
# here (bench.txt machine, 2 cores): the whole 720x400 text console raw is 1125 KiB in
# 0.6 ms, PNG (level 1) 6.4 KiB in 3.1 ms; a 1024x768 desktop-like screen raw 3 MiB in
# 2.1 ms, PNG 40 KiB in 15 ms (JPEG q80: 13 KiB / 0.6 ms and 49 KiB / 1.8 ms). An exact
# frame goes once per still screen, so PNG's milliseconds cost less than megabytes through
# ZMQ, the server and the websocket; for a few typed characters raw needs no decoder at all.
RAW_MAX_PIXELS = 128 * 128


class TileFormat(enum.StrEnum):
    """How a tile's bytes are encoded; the value is what the browser reads."""

    JPEG = "jpeg"
    RGBA = "rgba"  # width * height * 4 bytes, R,G,B,A, rows top to bottom
    PNG = "png"


@dataclass(frozen=True, slots=True)
class EncodedTile:
    """One rectangle of the screen and its encoded pixels."""

    box: Box
    format: TileFormat
    data: bytes


def bounding_box(boxes: Iterable[Box]) -> Box | None:
    """The smallest box holding every non-empty box; None when there is none."""
    out: Box | None = None
    for box in boxes:
        if not box.empty:
            out = box if out is None else out.union(box)
    return out


def damaged_tiles(rects: Iterable[Box], width: int, height: int, *, tile: int = TILE,
                  max_tiles: int = MAX_TILES) -> list[Box]:
    """Rectangles covering every damaged ``tile`` x ``tile`` cell of a ``width`` x
    ``height`` screen, clipped to the screen, top-left first; rects off the screen are
    dropped. More than ``max_tiles`` pieces become their one bounding box."""
    if width <= 0 or height <= 0 or tile <= 0 or max_tiles <= 0:
        raise InvalidArgument(f"damaged_tiles: {width}x{height} screen, tile {tile} and "
                              f"max_tiles {max_tiles} must all be > 0")
    screen = Box(0, 0, width, height)
    rows, cols = -(-height // tile), -(-width // tile)
    marked = np.zeros((rows, cols), dtype=bool)
    for rect in rects:
        box = rect.intersect(screen)
        if box.empty:
            continue
        marked[box.top // tile:(box.bottom - 1) // tile + 1,
               box.left // tile:(box.right - 1) // tile + 1] = True
    # runs of marked cells along each row; a run equal to one in the row above extends it
    done: list[tuple[int, int, int, int]] = []  # c0, r0, c1, r1 in cells, half-open
    open_runs: dict[tuple[int, int], int] = {}  # (c0, c1) -> first row
    for r in range(rows + 1):
        runs = _runs(marked[r]) if r < rows else []
        for span in list(open_runs):
            if span not in runs:
                done.append((span[0], open_runs.pop(span), span[1], r))
        for span in runs:
            open_runs.setdefault(span, r)
    boxes = sorted((Box(c0 * tile, r0 * tile, min(c1 * tile, width), min(r1 * tile, height))
                    for c0, r0, c1, r1 in done), key=lambda b: (b.top, b.left))
    if len(boxes) > max_tiles:
        whole = bounding_box(boxes)
        return [] if whole is None else [whole]
    return boxes


def _runs(row: np.ndarray[Any, np.dtype[np.bool_]]) -> list[tuple[int, int]]:
    """(start, end) of each run of True in a 1-D bool array."""
    padded = np.concatenate(([False], row, [False])).astype(np.int8)
    edges = np.flatnonzero(np.diff(padded))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def lossless_format(box: Box, choice: str = "auto") -> TileFormat:
    """How an exact tile is encoded: ``choice`` "rgba", "png", or "auto" (raw RGBA up to
    RAW_MAX_PIXELS, PNG beyond)."""
    if choice == "auto":
        small = box.width * box.height <= RAW_MAX_PIXELS
        return TileFormat.RGBA if small else TileFormat.PNG
    if choice in (TileFormat.RGBA, TileFormat.PNG):
        return TileFormat(choice)
    raise InvalidArgument(f"lossless tile format {choice!r}: use 'auto', 'rgba' or 'png'")


def to_rgba(pixels: Pixels) -> bytes:
    """B,G,R,X pixels (h, w, 4) as R,G,B,A bytes with A = 255 (ImageData's layout)."""
    out = np.empty((*pixels.shape[:2], 4), dtype=np.uint8)
    out[..., 0] = pixels[..., 2]
    out[..., 1] = pixels[..., 1]
    out[..., 2] = pixels[..., 0]
    out[..., 3] = 255
    return out.tobytes()


def encode_tile(screen: Pixels, box: Box, fmt: TileFormat, *,
                quality: int = JPEG_QUALITY) -> EncodedTile:
    """``box`` of a whole ``screen`` ((h, w, 4) B,G,R,X) encoded as ``fmt``."""
    height, width = screen.shape[:2]
    if box.empty or box.intersect(Box(0, 0, width, height)) != box:
        raise InvalidArgument(f"tile {box} is empty or not inside the {width}x{height} screen")
    part = screen[box.top:box.bottom, box.left:box.right]
    if fmt is TileFormat.JPEG:
        # 4:2:0 and the fast DCT: the cheapest settings measured (research/display.md §6);
        # the lossless frame that follows a still screen puts the exact pixels back
        data = simplejpeg.encode_jpeg(np.ascontiguousarray(part), quality=quality,
                                      colorspace="BGRX", colorsubsampling="420",
                                      fastdct=True)
    elif fmt is TileFormat.RGBA:
        data = to_rgba(part)
    else:
        image = Image.frombuffer("RGB", (box.width, box.height), np.ascontiguousarray(part),
                                 "raw", "BGRX", 0, 1)
        out = io.BytesIO()
        image.save(out, format="PNG", compress_level=1)
        data = out.getvalue()
    return EncodedTile(box, fmt, data)


def frame_message(number: int, size: tuple[int, int], tiles: Sequence[EncodedTile]
                  ) -> tuple[dict[str, Any], list[bytes]]:
    """The widget message of one frame: JSON content and one binary buffer per tile.

    ``tiles`` lists ``[x, y, width, height, format]`` in the order of the buffers; the
    browser paints them in that order and acknowledges frame ``number``.
    """
    content = {
        "type": "frame", "n": number, "width": size[0], "height": size[1],
        "tiles": [[t.box.left, t.box.top, t.box.width, t.box.height, t.format.value]
                  for t in tiles],
    }
    return content, [t.data for t in tiles]
