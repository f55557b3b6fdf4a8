"""Known screen images (atp_notebook/lab/known_images.py): the same pixels every time, in
the framebuffer's byte order, with the properties the display corpus relies on (flat and
repeating rows for LZ/GLZ, a photo-like strip that spice-server's auto modes send as QUIC)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from PIL import Image

from atp_notebook.errors import InvalidArgument
from atp_notebook.lab.known_images import (
    HEIGHT,
    KNOWN_IMAGES,
    MIXED_BANDS,
    WIDTH,
    framebuffer_bytes,
    gradient,
    image_digest,
    known_image,
)


@pytest.mark.parametrize("name", KNOWN_IMAGES)
def test_each_image_is_the_same_every_time_and_its_own(name: str) -> None:
    image = known_image(name)
    assert (image.mode, image.size) == ("RGB", (WIDTH, HEIGHT))
    assert image.tobytes() == known_image(name).tobytes()
    others = {image_digest(known_image(n)) for n in KNOWN_IMAGES if n != name}
    assert image_digest(image) not in others


def test_framebuffer_bytes_are_b_g_r_x_rows() -> None:
    image = Image.new("RGB", (3, 2), (30, 90, 160))
    image.putpixel((2, 1), (1, 2, 3))
    raw = framebuffer_bytes(image)
    assert len(raw) == 3 * 2 * 4
    assert raw[:4] == bytes([160, 90, 30, 0])
    assert raw[-4:] == bytes([3, 2, 1, 0])


def test_the_mixed_bands_cover_the_screen_in_order() -> None:
    rows = 0
    for top, count in MIXED_BANDS:
        assert top == rows and count > 0
        rows += count
    assert rows == HEIGHT


def neighbour_stats(image: Image.Image) -> tuple[float, float]:
    """(share of horizontally adjacent pixels that are equal, mean absolute difference)."""
    data = image.convert("RGB").tobytes()
    pixels = [data[i:i + 3] for i in range(0, len(data), 3)]
    width = image.width
    pairs = [(pixels[i], pixels[i + 1]) for i in range(len(pixels) - 1) if (i + 1) % width]
    equal = sum(a == b for a, b in pairs) / len(pairs)
    diff = sum(abs(x - y) for a, b in pairs for x, y in zip(a, b, strict=True))
    return equal, diff / (3 * len(pairs))


def band(name: str, index: int) -> Image.Image:
    top, count = MIXED_BANDS[index]
    return known_image(name).crop((0, top, WIDTH, top + count))


def test_the_photo_strip_is_gradual_and_the_flat_band_flat() -> None:
    # spice-server picks QUIC in auto modes when neighbours mostly differ, but only a little
    equal, diff = neighbour_stats(band("mixed", 2))
    assert equal < 0.2 and diff < 20
    equal, _ = neighbour_stats(band("mixed", 3))
    assert equal > 0.95


def test_gradient_rows_repeat_or_shift_by_one_pixel() -> None:
    horizontal = gradient(64, 8, "horizontal")
    rows = [horizontal.crop((0, y, 64, y + 1)).tobytes() for y in range(8)]
    assert len(set(rows)) == 1 and len(set(rows[0][i:i + 3] for i in range(0, 192, 3))) > 32
    diagonal = gradient(64, 8, "diagonal")
    for y in range(7):
        upper = diagonal.crop((0, y, 63, y + 1)).tobytes()
        lower = diagonal.crop((1, y + 1, 64, y + 2)).tobytes()  # the row above, one right
        assert upper == lower


@pytest.mark.parametrize(("call", "fragment"), [
    (lambda: known_image("sunset"), "unknown known image 'sunset'"),
    (lambda: known_image("flat", 10, 10), "64..4096 px"),
    (lambda: gradient(8, 8, "spiral"), "unknown gradient 'spiral'"),
])
def test_unknown_names_and_sizes_are_invalid_arguments(call: Callable[[], object],
                                                       fragment: str) -> None:
    with pytest.raises(InvalidArgument, match=fragment):
        call()


def test_other_sizes_scale_the_same_layout() -> None:
    image = known_image("mixed", 800, 600)
    assert image.size == (800, 600)
    assert image.getpixel((0, 0)) == known_image("mixed").getpixel((0, 0))  # the sidebar
