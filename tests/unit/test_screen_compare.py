"""The lab display tests' picture comparison (tests/integration/screens.py): differing pixels,
PSNR and mean absolute difference as the tolerance defines them, and the JPEG round trip
that stands for spice-server's JPEG."""

from __future__ import annotations

import math

import numpy as np
from PIL import Image

from atp_notebook.lab.known_images import known_image
from tests.integration.screens import JPEG_TOLERANCE, jpeg_round_trip, screen_diff


def test_equal_pictures_are_equal_under_any_tolerance() -> None:
    image = known_image("flat", 64, 64)
    diff = screen_diff(image, image.copy())
    assert (diff.pixels, diff.psnr_db, diff.mean_abs, diff.max_abs) == (0, math.inf, 0.0, 0)
    assert diff.within(None) and diff.within(JPEG_TOLERANCE)


def test_one_pixel_off_by_ten_in_one_channel() -> None:
    a = Image.new("RGB", (10, 10), (100, 100, 100))
    b = a.copy()
    b.putpixel((3, 4), (100, 110, 100))
    diff = screen_diff(a, b)
    assert (diff.pixels, diff.max_abs) == (1, 10)
    assert math.isclose(diff.mean_abs, 10 / 100)  # green's mean over 100 pixels
    mse = 10 * 10 / 300  # one squared error over every channel of every pixel
    assert math.isclose(diff.psnr_db, 10 * math.log10(255 * 255 / mse))
    assert not diff.within(None) and diff.within(JPEG_TOLERANCE)


def test_pictures_of_two_sizes_are_never_within_a_tolerance() -> None:
    diff = screen_diff(Image.new("RGB", (720, 400)), Image.new("RGB", (1024, 768)))
    assert not diff.within(None) and not diff.within(JPEG_TOLERANCE)
    assert "sizes differ: (720, 400)" in str(diff)


def test_a_uniform_error_of_three_is_the_tolerances_edge() -> None:
    a = Image.new("RGB", (8, 8), (50, 60, 70))
    within = screen_diff(a, Image.new("RGB", (8, 8), (53, 63, 73)))
    beyond = screen_diff(a, Image.new("RGB", (8, 8), (54, 64, 74)))
    assert within.mean_abs == 3.0 and within.within(JPEG_TOLERANCE)  # 38.6 dB
    assert beyond.mean_abs == 4.0 and not beyond.within(JPEG_TOLERANCE)


def test_the_jpeg_round_trip_is_lossy_deterministic_and_near() -> None:
    image = known_image("photo", 256, 192)
    once, again = jpeg_round_trip(image), jpeg_round_trip(image)
    assert once.tobytes() == again.tobytes() and once.size == image.size
    diff = screen_diff(once, image)
    assert diff.pixels > 0 and diff.within(JPEG_TOLERANCE)
    # chroma is subsampled 4:2:0: a one-pixel red dot on grey loses most of its colour
    dot = Image.new("RGB", (16, 16), (128, 128, 128))
    dot.putpixel((5, 5), (255, 0, 0))
    red, green, _ = np.asarray(jpeg_round_trip(dot), dtype=np.int16)[5, 5]
    assert red - green < 100
