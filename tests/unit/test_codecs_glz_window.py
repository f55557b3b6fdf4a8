"""The GLZ window: two channels on two threads, waits, eviction, close/clear, bounded memory,
and ZLIB_GLZ."""

from __future__ import annotations

import random
import threading
import time
import zlib
from collections.abc import Callable

import pytest

from atp_notebook.errors import CodecError, InvalidArgument
from atp_notebook.spice.codecs import DecodedImage, GlzWindow, decode_glz, decode_zlib_glz
from tests.unit.glz_streams import RGB32, GlzCase, GlzTestEncoder, random_pixels
from tests.unit.test_codecs_glz import PX, PX2, hdr, lit, ref

LONG = 3600.0  # a wait that, if it were waited, would hang the test: failing fast is the point


class Decoder(threading.Thread):
    """One display channel: decodes its streams in order, keeps results and errors."""

    def __init__(self, window: GlzWindow, streams: list[bytes], timeout: float = LONG) -> None:
        super().__init__(daemon=True)
        self.window, self.streams, self.timeout = window, streams, timeout
        self.results: list[DecodedImage | CodecError] = []

    def run(self) -> None:
        for stream in self.streams:
            try:
                self.results.append(decode_glz(stream, self.window, timeout=self.timeout))
            except CodecError as exc:
                self.results.append(exc)

    def finish(self) -> list[DecodedImage | CodecError]:
        self.join(30)
        assert not self.is_alive(), "a decode kept waiting"
        return self.results

    def finish_now(self) -> list[DecodedImage | CodecError]:
        """Run it and wait: decodes that must fail at once, not after LONG."""
        self.start()
        return self.finish()


def until(check: Callable[[], bool]) -> None:
    """Poll (the main thread runs Python meanwhile: the waiting decode released the GIL)."""
    deadline = time.monotonic() + 30
    while not check():
        assert time.monotonic() < deadline, "the condition never came"
        time.sleep(0.001)


def waiting_decode(window: GlzWindow, stream: bytes) -> Decoder:
    """Start a decode that must wait for an image, and return once it waits."""
    before = window.waiting
    thread = Decoder(window, [stream])
    thread.start()
    until(lambda: window.waiting == before + 1)
    return thread


def test_out_of_order_across_channels_waits_for_the_image() -> None:
    window = GlzWindow(100)
    # channel B's image 1 references channel A's image 0, and arrives first
    b = waiting_decode(window, hdr(2, 1, 1, 1) + ref(2, 1, 0))
    decode_glz(hdr(2) + lit(PX, PX2), window)  # channel A
    (img,) = b.finish()
    assert isinstance(img, DecodedImage)
    assert bytes(img.pixels) == PX + b"\0" + PX2 + b"\0"
    assert window.ids() == (0, 1) and window.waiting == 0


def _chain(seed: int, count: int, max_pixels: int) -> tuple[GlzTestEncoder, list[GlzCase]]:
    rng = random.Random(seed)
    enc = GlzTestEncoder(max_pixels)
    base = random_pixels(RGB32, 23, 5, rng)
    cases = []
    for _ in range(count):
        pixels = list(base)
        pixels[rng.randrange(len(pixels))] = rng.getrandbits(24)
        shift = rng.randrange(0, 23)
        base = pixels[shift:] + pixels[:shift]
        cases.append(enc.encode(RGB32, 23, 5, base, rng, literal_rate=0.05))
    return enc, cases


@pytest.mark.parametrize("seed", range(6))
def test_two_channels_decoding_interleaved_on_two_threads(seed: int) -> None:
    """The server alternates images between two channels; each channel decodes on its own
    thread, in its own order, and every image references the images just before it."""
    enc, cases = _chain(seed, 60, 23 * 5 * 8)
    assert sum(c.refs.get("cross", 0) for c in cases) > 30
    rng = random.Random(seed)
    channels: list[list[GlzCase]] = [[], []]
    for case in cases:
        channels[rng.randrange(2)].append(case)
    window = GlzWindow(23 * 5 * 8)
    threads = [Decoder(window, [c.stream for c in ch]) for ch in channels]
    for t in threads[:: 1 if seed % 2 else -1]:
        t.start()
    for ch, t in zip(channels, threads, strict=True):
        results = t.finish()
        for case, img in zip(ch, results, strict=True):
            assert isinstance(img, DecodedImage), img
            assert bytes(img.pixels) == case.expected
    assert window.ids() == enc.held_ids() and window.waiting == 0


def test_a_wait_times_out() -> None:
    window = GlzWindow(100)
    stream = hdr(2, 1, 1, 1) + ref(2, 1, 0)
    with pytest.raises(CodecError) as info:
        decode_glz(stream, window, timeout=0.05)
    assert "did not arrive within 0.05 s" in info.value.reason and info.value.offset == 33
    # no wait at all
    with pytest.raises(CodecError) as info:
        decode_glz(hdr(2, 1, 2, 2) + ref(2, 2, 0), GlzWindow(100, wait_timeout=0))
    assert "has not arrived" in info.value.reason


def test_the_window_default_wait_applies() -> None:
    window = GlzWindow(100, wait_timeout=0.02)
    with pytest.raises(CodecError, match=r"within 0\.02 s"):
        decode_glz(hdr(2, 1, 1, 1) + ref(2, 1, 0), window)


def test_a_failed_image_fails_its_waiters_at_once() -> None:
    window = GlzWindow(100)
    waiter = waiting_decode(window, hdr(2, 1, 2, 2) + ref(2, 1, 0))  # image 2 needs image 1
    decode_glz(hdr(2) + lit(PX, PX2), window)  # image 0: fine, image 1 still missing
    with pytest.raises(CodecError):
        decode_glz(hdr(2, 1, 1, 1) + b"\x1f", window)  # image 1 is garbage
    (err,) = waiter.finish()
    assert isinstance(err, CodecError) and "image 1, which failed to decode" in err.reason
    # later decodes that need image 1 fail at once too; image 0 still serves
    (err,) = Decoder(window, [hdr(2, 1, 3, 3) + ref(1, 2, 0) + ref(1, 3, 0)]).finish_now()
    assert isinstance(err, CodecError) and "failed to decode" in err.reason


def test_eviction_by_win_head_dist_and_released_references_fail_at_once() -> None:
    window = GlzWindow(1000)
    for image_id in range(5):  # images 0..4, each keeping all before it
        decode_glz(hdr(1, 1, image_id, image_id) + lit(bytes([image_id] * 3)), window)
    assert window.ids() == (0, 1, 2, 3, 4)
    # image 5 says its window starts 2 images back: nothing later can reach 0..2
    decode_glz(hdr(1, 1, 5, 2) + ref(1, 2, 0), window)
    assert window.ids() == (3, 4, 5) and window.pixels == 3
    (err,) = Decoder(window, [hdr(1, 1, 6, 6) + ref(1, 6, 0)]).finish_now()
    assert isinstance(err, CodecError) and "already released" in err.reason


def test_release_waits_for_the_images_still_in_flight() -> None:
    """Image 3 arrives before image 1: what image 1 may reference must stay until it came."""
    window = GlzWindow(1000, wait_timeout=0)
    decode_glz(hdr(1, 1, 0, 0) + lit(PX), window)
    decode_glz(hdr(1, 1, 2, 2) + lit(PX), window)
    decode_glz(hdr(1, 1, 3, 1) + lit(PX2), window)  # its own window starts at image 2
    assert window.ids() == (0, 2, 3)  # image 1 (in flight) may still reference image 0
    img = decode_glz(hdr(1, 1, 1, 1) + ref(1, 1, 0), window)
    assert bytes(img.pixels) == PX + b"\0"
    assert window.ids() == (2, 3)  # now 0..3 arrived and image 3's head is image 2


def test_close_wakes_every_waiter() -> None:
    window = GlzWindow(100)
    decode_glz(hdr(2) + lit(PX, PX2), window)
    waiters = [waiting_decode(window, hdr(1, 1, 5 + k, 5 + k) + ref(1, 1, 0)) for k in range(2)]
    window.close()
    for w in waiters:
        (err,) = w.finish()
        assert isinstance(err, CodecError) and err.reason == "window closed"
    assert window.closed and window.pixels == 0 and window.images == 0
    with pytest.raises(CodecError, match="window closed"):
        decode_glz(hdr(1) + lit(PX), window)


def test_clear_starts_over_and_fails_the_waiters() -> None:
    window = GlzWindow(100)
    decode_glz(hdr(2) + lit(PX, PX2), window)
    waiter = waiting_decode(window, hdr(1, 1, 2, 2) + ref(1, 1, 0))
    window.clear()
    (err,) = waiter.finish()
    assert isinstance(err, CodecError) and "window cleared" in err.reason
    assert window.ids() == () and window.pixels == 0 and not window.closed
    img = decode_glz(hdr(1) + lit(PX2), window)  # ids start again from 0
    assert bytes(img.pixels) == PX2 + b"\0" and window.ids() == (0,)


def test_context_manager_closes() -> None:
    with GlzWindow(10) as window:
        decode_glz(hdr(1) + lit(PX), window)
        assert "1 images" in repr(window)
    assert window.closed and window.pixels == 0


def test_memory_stays_bounded_whatever_the_server_sends() -> None:
    """Images that never release anything (win_head_dist = id) and ids that jump: the
    window keeps at most three windows of pixels, the oldest going first."""
    window = GlzWindow(1000, wait_timeout=0)
    body = lit(*[PX] * 32) + ref(200 - 32, 0, 32)
    for image_id in range(100):
        decode_glz(hdr(200, 1, image_id, image_id) + body, window)
        assert window.pixels <= 3 * 1000
    assert window.ids()[-1] == 99 and window.images >= 10
    # an id far ahead: everything older than the ring can span goes
    decode_glz(hdr(200, 1, 1 << 40, 1 << 20) + body, window)
    assert window.ids() == (1 << 40,)
    # an image bigger than the window is refused (the server would have sent LZ)
    with pytest.raises(CodecError, match="does not fit the window"):
        decode_glz(hdr(1001, 1, (1 << 40) + 1, 0) + body, window)


def test_many_small_images_are_charged_for_their_records() -> None:
    window = GlzWindow(64, wait_timeout=0)
    for image_id in range(1000):
        decode_glz(hdr(1, 1, image_id, image_id) + lit(PX), window)
    # 3 windows of 64 pixels, each 1-pixel image costing 1 + 16: 11 images
    assert window.images == 3 * 64 // 17 and window.ids()[-1] == 999


# --- ZLIB_GLZ --------------------------------------------------------------------------


def test_zlib_glz_round_trip() -> None:
    _, cases = _chain(9, 6, 23 * 5 * 8)
    window = GlzWindow(23 * 5 * 8)
    for case in cases:
        packed = zlib.compress(case.stream, 6)
        img = decode_zlib_glz(packed, len(case.stream), window)
        assert bytes(img.pixels) == case.expected


def _zbad(data: bytes, glz_size: int, window: GlzWindow | None = None) -> CodecError:
    with pytest.raises(CodecError) as info:
        decode_zlib_glz(data, glz_size, window or GlzWindow(1000, wait_timeout=0))
    assert info.value.codec == "zlib-glz"
    return info.value


def test_zlib_glz_bad_input() -> None:
    stream = hdr(2) + lit(PX, PX2)
    packed = zlib.compress(stream)
    assert "inflates to 40 bytes" in _zbad(packed, len(stream) + 5).reason
    assert "past glz_size" in _zbad(packed, len(stream) - 1).reason
    assert "ends early" in _zbad(packed[:-3], len(stream)).reason
    err = _zbad(packed + b"xyz", len(stream))
    assert "3 bytes after" in err.reason and err.offset == len(packed)
    assert "bad deflate data" in _zbad(b"\x00garbage" * 3, len(stream)).reason
    # a GLZ error inside: the reason names the offset in the inflated stream
    bad = hdr(3) + lit(PX, PX2)
    err = _zbad(zlib.compress(bad), len(bad))
    assert "ends with 1 of 3" in err.reason and "byte 40 of the inflated GLZ stream" in err.reason


def test_zlib_glz_hostile_sizes_allocate_nothing_large() -> None:
    # a size no GLZ image of the window can have is refused before inflating
    assert "more than any GLZ image" in _zbad(b"\x78\x9c", 0xFFFFFFFF).reason
    # a small bomb: 64 MB of zeros claimed as 10 000 bytes stops at 10 001 bytes
    bomb = zlib.compress(b"\0" * (64 << 20), 9)
    assert "past glz_size 10000" in _zbad(bomb, 10_000).reason
    with pytest.raises(InvalidArgument):
        decode_zlib_glz(bomb, -1, GlzWindow(10))


def test_zlib_glz_image_counts_in_the_shared_window() -> None:
    window = GlzWindow(100, wait_timeout=0)
    first = hdr(2) + lit(PX, PX2)
    decode_zlib_glz(zlib.compress(first), len(first), window)
    second = hdr(2, 1, 1, 1) + ref(2, 1, 0)  # a plain GLZ image referencing the zlib one
    assert bytes(decode_glz(second, window).pixels) == PX + b"\0" + PX2 + b"\0"
