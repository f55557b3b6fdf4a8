"""Cursor shapes as RGBA pixels, and a cursor drawn onto a screen picture (numpy, vectorised).

The meaning of each cursor type's bytes follows spice-gtk ``channel-cursor.c`` (the sizes
are in :func:`atp_notebook.spice.proto.cursor.cursor_data_size`):

- ALPHA: u32 0xAARRGGBB a pixel, taken as straight alpha as spice-gtk does. Guests whose
  driver hands over premultiplied pixels (an X server's ARGB cursors are premultiplied)
  differ only in half-transparent edges; ``premultiplied=True`` undoes it.
- MONO: an AND mask then a XOR mask, rows padded to a byte, most significant bit first:
  AND 1 XOR 0 transparent, 0 0 black, 0 1 white, 1 1 inverts the screen below.
- COLOR4/8 (palette), COLOR16 (x555), COLOR24, COLOR32 (0x00RRGGBB), then an AND mask: a
  set bit is transparent, except over a white pixel, where it inverts the screen below
  (the Windows convention spice-gtk recognises).

Pixels that invert the screen cannot be a colour: :class:`CursorImage` carries them as
``invert`` (a bool mask) and shows them opaque black in ``rgba``; :func:`composite_cursor`
inverts the picture there.

Example::

    image = decode_cursor(cursor.cursor_state.shape)
    image.rgba.shape                    # (64, 64, 4), uint8
    shot = composite_cursor(frame, image, cursor.cursor_state.position, order="bgr")
    image.to_pil().save("cursor.png")
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt
from PIL import Image

from atp_notebook.spice.proto.cursor import (
    PALETTE_ENTRIES,
    CursorShape,
    CursorType,
    mask_size,
    pixel_bytes,
)

U8Array = npt.NDArray[np.uint8]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, eq=False)
class CursorImage:
    """A decoded shape: ``rgba`` (height, width, 4) uint8, straight alpha; ``invert``
    (height, width) bool, where the cursor inverts the screen; the hot spot in pixels."""

    rgba: U8Array
    invert: BoolArray
    hotspot: tuple[int, int]

    @property
    def width(self) -> int:
        return int(self.rgba.shape[1])

    @property
    def height(self) -> int:
        return int(self.rgba.shape[0])

    def to_pil(self) -> Image.Image:
        """The shape as a PIL RGBA image (inverting pixels opaque black)."""
        return Image.fromarray(self.rgba, "RGBA")


def _bits(data: bytes, height: int, width: int, *, row_padded: bool) -> BoolArray:
    """A 1-bit mask, most significant bit first, as (height, width) bools."""
    raw = np.frombuffer(data, np.uint8)
    if row_padded:
        rows = raw.reshape(height, (width + 7) // 8)
        return np.unpackbits(rows, axis=1)[:, :width].astype(bool)
    return np.unpackbits(raw)[: width * height].reshape(height, width).astype(bool)


def _xrgb_to_rgb(pixels: npt.NDArray[np.uint32]) -> U8Array:
    """u32 0x00RRGGBB values to (..., 3) R, G, B bytes."""
    rgb = np.empty((*pixels.shape, 3), np.uint8)
    rgb[..., 0] = (pixels >> 16) & 0xFF
    rgb[..., 1] = (pixels >> 8) & 0xFF
    rgb[..., 2] = pixels & 0xFF
    return rgb


def _decode_alpha(shape: CursorShape, premultiplied: bool) -> CursorImage:
    bgra = np.frombuffer(shape.data, np.uint8).reshape(shape.height, shape.width, 4)
    rgba = np.ascontiguousarray(bgra[..., [2, 1, 0, 3]])
    if premultiplied:
        alpha = rgba[..., 3:4].astype(np.uint32)
        safe = np.maximum(alpha, 1)
        unmultiplied = np.minimum(rgba[..., :3].astype(np.uint32) * 255 // safe, 255)
        rgba[..., :3] = np.where(alpha > 0, unmultiplied, 0).astype(np.uint8)
    invert = np.zeros((shape.height, shape.width), bool)
    return CursorImage(rgba, invert, shape.hotspot)


def _decode_mono(shape: CursorShape) -> CursorImage:
    size = mask_size(CursorType.MONO, shape.width, shape.height)
    and_mask = _bits(shape.data[:size], shape.height, shape.width, row_padded=True)
    xor_mask = _bits(shape.data[size:2 * size], shape.height, shape.width, row_padded=True)
    rgba = np.zeros((shape.height, shape.width, 4), np.uint8)
    rgba[..., :3] = np.where(xor_mask & ~and_mask, 255, 0)[..., None].astype(np.uint8)
    rgba[..., 3] = np.where(and_mask & ~xor_mask, 0, 255).astype(np.uint8)
    return CursorImage(rgba, and_mask & xor_mask, shape.hotspot)


def _colour_pixels(shape: CursorShape) -> tuple[U8Array, BoolArray, int]:
    """(height, width, 3) RGB, where each pixel is white, and the AND mask's offset."""
    h, w, data = shape.height, shape.width, shape.data
    kind = shape.cursor_type
    size = pixel_bytes(kind, w, h)
    raw = np.frombuffer(data, np.uint8, count=size)
    if kind in PALETTE_ENTRIES:
        entries = PALETTE_ENTRIES[kind]
        palette = np.frombuffer(data, "<u4", count=entries, offset=size).astype(np.uint32)
        if kind is CursorType.COLOR4:
            nibbles = raw.reshape(h, (w + 1) // 2)
            pairs = np.stack([nibbles >> 4, nibbles & 0x0F], axis=2)
            index = pairs.reshape(h, 2 * nibbles.shape[1])[:, :w]  # high nibble first
        else:
            index = raw.reshape(h, w)
        values = palette[index]
        return _xrgb_to_rgb(values), (values & 0xFFFFFF) == 0xFFFFFF, size + 4 * entries
    if kind is CursorType.COLOR16:
        x555 = np.frombuffer(data, "<u2", count=w * h).reshape(h, w).astype(np.uint32)
        # 5-bit channels shifted to the top of a byte, as spice-gtk does
        shifted = ((x555 & 0x7C00) << 9) | ((x555 & 0x03E0) << 6) | ((x555 & 0x001F) << 3)
        values = shifted.astype(np.uint32)
        return _xrgb_to_rgb(values), (x555 & 0x7FFF) == 0x7FFF, size
    if kind is CursorType.COLOR24:
        rgb = np.ascontiguousarray(raw.reshape(h, w, 3)[..., ::-1])  # B, G, R on the wire
        return rgb, np.all(rgb == 255, axis=2), size
    values = np.frombuffer(data, "<u4", count=w * h).reshape(h, w).astype(np.uint32)
    return _xrgb_to_rgb(values), (values & 0xFFFFFF) == 0xFFFFFF, size


def _decode_colour(shape: CursorShape) -> CursorImage:
    rgb, white, mask_at = _colour_pixels(shape)
    size = mask_size(shape.cursor_type, shape.width, shape.height)
    and_mask = _bits(shape.data[mask_at:mask_at + size], shape.height, shape.width,
                     row_padded=False)
    invert = and_mask & white
    transparent = and_mask & ~white
    rgba = np.empty((shape.height, shape.width, 4), np.uint8)
    rgba[..., :3] = np.where((invert | transparent)[..., None], 0, rgb)
    rgba[..., 3] = np.where(transparent, 0, 255).astype(np.uint8)
    return CursorImage(rgba, invert, shape.hotspot)


def decode_cursor(shape: CursorShape, *, premultiplied: bool = False) -> CursorImage:
    """RGBA pixels and the inverting pixels of one shape (any :class:`CursorType`).

    ``shape.data`` was checked for size by the protocol, so this cannot run past it.
    """
    if shape.cursor_type is CursorType.ALPHA:
        return _decode_alpha(shape, premultiplied)
    if shape.cursor_type is CursorType.MONO:
        return _decode_mono(shape)
    return _decode_colour(shape)


def composite_cursor(picture: U8Array, image: CursorImage, position: tuple[int, int],
                     order: Literal["rgb", "bgr"] = "rgb") -> U8Array:
    """A copy of ``picture`` ((height, width, 3 or 4) uint8) with the cursor drawn with its
    hot spot at ``position``: alpha-blended, inverting pixels inverted, clipped at the
    picture's edges (a cursor partly or wholly off-screen is fine). ``order`` is the
    picture's channel order: display surfaces and screenshots are BGR(X)."""
    out = picture.copy()
    left = position[0] - image.hotspot[0]
    top = position[1] - image.hotspot[1]
    y0, x0 = max(top, 0), max(left, 0)
    y1 = min(top + image.height, picture.shape[0])
    x1 = min(left + image.width, picture.shape[1])
    if y0 >= y1 or x0 >= x1:
        return out
    src = image.rgba[y0 - top:y1 - top, x0 - left:x1 - left]
    colour = src[..., 2::-1] if order == "bgr" else src[..., :3]
    invert = image.invert[y0 - top:y1 - top, x0 - left:x1 - left]
    region = out[y0:y1, x0:x1, :3]
    alpha = src[..., 3:4].astype(np.uint16)
    blended = (colour * alpha + region * (255 - alpha) + 127) // 255
    blended = np.where(invert[..., None], 255 - region, blended)
    out[y0:y1, x0:x1, :3] = blended.astype(np.uint8)
    return out
