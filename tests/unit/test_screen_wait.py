"""Waiting on a display for a needle or a text (atp_notebook/screen/vm_screen.py), on a fake
display that publishes frames: a check runs at once and again only after a frame whose
damage touches the needle's search window (or a new screen size); past the timeout a
ScreenMismatch carries the screen, the candidates and the numbers (saved as files by
atp_notebook/screen/evidence.py)."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar, cast

import numpy as np
import pytest

from atp_notebook.errors import InvalidArgument, ScreenMismatch
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.screen.evidence import evidence_images, save_evidence
from atp_notebook.screen.needle import Needle, NeedleArea, NeedleSet
from atp_notebook.screen.ocr import TextReader
from atp_notebook.screen.vm_screen import VmScreen
from atp_notebook.spice.display.live import Frame, Region
from atp_notebook.spice.display.surfaces import Box
from atp_notebook.spice.display_facade import VmDisplay
from atp_notebook.spice.facade import VmSpice

T = TypeVar("T")
Pixels = np.ndarray[Any, np.dtype[np.uint8]]
WIDTH, HEIGHT = 320, 240
ELEMENT = (100, 80, 60, 40)


def screen(element: bool = True, size: tuple[int, int] = (WIDTH, HEIGHT)) -> Pixels:
    """B,G,R,X, as the display gives."""
    pixels = np.full((size[1], size[0], 4), 128, np.uint8)
    if element:
        x, y, w, h = ELEMENT
        pixels[y:y + h, x:x + w, :3] = (30, 30, 200)
        pixels[y + 10:y + 18, x + 8:x + 40, :3] = 255
    return pixels


NEEDLE = Needle("element", np.ascontiguousarray(screen()[:, :, :3]),
                (NeedleArea(*ELEMENT, margin=20),), ("element",))


class FakeDisplay:
    """What VmScreen uses of a VmDisplay: a listener registry and screen copies."""

    vm_id = "fake-vm"
    channel_id = 0

    def __init__(self, pixels: Pixels) -> None:
        self.pixels = pixels
        self.listeners: Listeners[Frame] = Listeners(logging.getLogger("test"))
        self.copies = 0
        self.frames = 0

    async def _add_listener(self, listener: Any, timeout: float) -> ListenerHandle:
        return self.listeners.add(listener)

    async def _pixels(self, region: Region | None, timeout: float) -> Pixels:
        self.copies += 1
        return self.pixels.copy()

    def draw(self, pixels: Pixels, rect: Box) -> None:
        self.pixels = pixels
        self.frames += 1
        self.listeners.emit(Frame(self.frames, (rect,), time.monotonic(),
                                  (pixels.shape[1], pixels.shape[0])))


class FakeReader:
    def __init__(self, text: str) -> None:
        self.text = text
        self.regions: list[tuple[int, int, int, int] | None] = []

    def read(self, pixels: Any, region: tuple[int, int, int, int] | None = None) -> str:
        self.regions.append(region)
        return self.text


def vm_screen(display: FakeDisplay, reader: FakeReader | None = None) -> VmScreen:
    needles = NeedleSet((NEEDLE,))
    text_reader = cast(TextReader, reader or FakeReader(""))
    return VmScreen(cast(VmDisplay, display), cast(VmSpice, None), lambda: needles,
                    lambda: text_reader)


def run(coro: Coroutine[Any, Any, T]) -> T:
    return asyncio.run(coro)


async def until(predicate: Any, what: str) -> None:
    for _ in range(1000):  # the checks run on a worker thread: let them finish
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"never: {what}")


def test_a_check_runs_at_once_and_then_only_for_damage_that_touches_the_needle() -> None:
    display = FakeDisplay(screen(element=False))
    screen_ = vm_screen(display)

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(screen_._assert_screen("element", timeout=30))
        await until(lambda: display.copies == 1, "the first check")
        # outside the area grown by its margin of 20: (80, 60)-(180, 140)
        for rect in (Box(0, 0, 79, 59), Box(200, 150, 320, 240), Box(181, 0, 320, 59)):
            display.draw(screen(element=False), rect)
        await asyncio.sleep(0.1)
        assert display.copies == 1 and not waiting.done()
        display.draw(screen(element=False), Box(170, 130, 200, 150))  # touches the margin
        await until(lambda: display.copies == 2, "a check after damage in the margin")
        display.draw(screen(), Box(*ELEMENT[:2], ELEMENT[0] + 60, ELEMENT[1] + 40))
        return await waiting

    found = run(scenario())
    assert found.ok and found.areas[0].position == ELEMENT[:2]
    assert display.copies == 3
    assert len(display.listeners) == 0  # the listener went with the wait


def test_a_new_screen_size_is_checked_wherever_the_damage_is() -> None:
    display = FakeDisplay(screen(size=(720, 400)))
    screen_ = vm_screen(display)

    async def scenario() -> Any:
        waiting = asyncio.ensure_future(screen_._assert_screen(NEEDLE, timeout=30))
        await until(lambda: display.copies == 1, "the first check")
        display.draw(screen(), Box(0, 0, 1, 1))
        return await waiting

    assert run(scenario()).ok


def test_past_the_timeout_the_mismatch_carries_its_evidence(tmp_path: Path) -> None:
    display = FakeDisplay(screen(element=False))
    with pytest.raises(ScreenMismatch, match=r"fake-vm: no needle matched within 0\.2 s "
                                             r"\(of element\); best element: area 0 "
                                             r"\(match\) 0\.\d+ < 0\.96 at") as caught:
        run(vm_screen(display)._assert_screen("element", timeout=0.2))
    error = caught.value
    assert isinstance(error, AssertionError)
    assert error.screen is not None and error.screen.size == (WIDTH, HEIGHT)
    assert error.best is not None and error.candidates == (error.best,)
    assert error.needles == (NEEDLE,)
    written = save_evidence(error, tmp_path / "evidence")
    assert sorted(p.name for p in written) == ["candidate.png", "diff.png", "needle.png",
                                               "numbers.json", "screen.png"]
    numbers = json.loads((tmp_path / "evidence" / "numbers.json").read_text())
    assert numbers["candidates"][0]["areas"][0]["similarity"] == error.best.similarity
    assert numbers["candidates"][0]["areas"][0]["passed"] is False


def test_check_screen_looks_once_and_says_none() -> None:
    display = FakeDisplay(screen(element=False))
    assert run(vm_screen(display)._check_screen("element")) is None
    assert display.copies == 1
    display = FakeDisplay(screen())
    found = run(vm_screen(display)._check_screen(["element"]))
    assert found is not None and found.ok


def test_the_diff_picture_shows_the_difference_where_the_area_was_found() -> None:
    shown = screen()
    shown[100:106, 120:126, :3] = 0  # a spot in the element
    display = FakeDisplay(shown)
    with pytest.raises(ScreenMismatch) as caught:
        run(vm_screen(display)._assert_screen(NEEDLE, timeout=0))
    assert caught.value.best is not None
    screenshot = caught.value.screen
    assert screenshot is not None
    pictures = evidence_images(caught.value.best, screenshot)
    # the screen dimmed to gray, magenta where it differs (the spot, spread by the blur)
    dimmed = np.asarray(screenshot.convert("L").point(lambda v: v // 4).convert("RGB"))
    diff = np.asarray(pictures["diff"])
    ys, xs = np.nonzero((diff != dimmed).any(axis=2))
    assert (xs.min(), xs.max(), ys.min(), ys.max()) == (119, 126, 99, 106)
    assert tuple(diff[103, 123]) == (255, 0, 255)
    assert pictures["candidate"].getpixel((ELEMENT[0], ELEMENT[1])) == (255, 40, 40)


@pytest.mark.parametrize(("wanted", "read", "found"), [
    ("login:  root", "Debian\nlogin: root\n", True),
    ("login: root", "Debian\nlogin: rot\n", False),
    (re.compile(r"^login: \w+$", re.M), "Debian\nlogin: root\n", True),
    (re.compile(r"^Password:", re.M), "Debian\nlogin: root\n", False),
])
def test_wait_for_text_finds_a_string_or_a_pattern(wanted: str | re.Pattern[str], read: str,
                                                   found: bool) -> None:
    reader = FakeReader(read)
    waiting = vm_screen(FakeDisplay(screen()), reader)._wait_for_text(
        wanted, region=(0, 0, 100, 16), timeout=0)
    if found:
        assert run(waiting) == read
    else:
        with pytest.raises(ScreenMismatch, match=r"was not read on the screen in "
                                                 r"\(0, 0, 100, 16\) within 0 s") as caught:
            run(waiting)
        assert caught.value.text == read and caught.value.screen is not None
    assert reader.regions == [(0, 0, 100, 16)]


@pytest.mark.parametrize(("what", "message"), [
    ("no-such-tag", "no needle has the tag 'no-such-tag'"),
    ([], "give a tag, tags, a Needle or Needles"),
    ([NEEDLE, "element"], "give a tag, tags, a Needle or Needles"),
])
def test_bad_needle_specs_are_refused_before_anything_is_read(what: Any, message: str) -> None:
    display = FakeDisplay(screen())
    with pytest.raises(InvalidArgument, match=message):
        run(vm_screen(display)._assert_screen(what, timeout=1))
    assert display.copies == 0


def test_a_search_ratio_widens_the_search_and_the_damage_that_rechecks() -> None:
    x, y, w, h = ELEMENT
    moved = screen(element=False)
    moved[10:10 + h, 250:250 + w] = screen()[y:y + h, x:x + w]  # 150 px right, 70 up
    display = FakeDisplay(moved)
    assert run(vm_screen(display)._check_screen(NEEDLE)) is None  # past its margin of 20
    found = run(vm_screen(display)._check_screen(NEEDLE, search_ratio=1.0))
    assert found is not None and found.areas[0].position == (250, 10)

    async def damage_far_away_counts() -> int:
        waiting = asyncio.ensure_future(vm_screen(display)._assert_screen(
            NEEDLE, timeout=30, search_ratio=1.0))
        display.pixels = screen(element=False)
        display.copies = 0
        await until(lambda: display.copies == 1, "the first check")
        display.draw(moved, Box(250, 10, 310, 50))  # far outside the margin of 20
        await waiting
        return display.copies

    assert run(damage_far_away_counts()) == 2


def test_a_bad_search_ratio_is_refused_before_anything_is_read() -> None:
    display = FakeDisplay(screen())
    with pytest.raises(InvalidArgument, match="search_ratio 2 must be a number from 0"):
        run(vm_screen(display)._assert_screen(NEEDLE, timeout=1, search_ratio=2))
    assert display.copies == 0


def test_bad_text_waits_are_refused() -> None:
    display = FakeDisplay(screen())
    with pytest.raises(InvalidArgument, match="the text to wait for is empty"):
        run(vm_screen(display)._wait_for_text("  ", timeout=1))
    with pytest.raises(InvalidArgument, match=r"region .* x and y must be >= 0"):
        run(vm_screen(display)._wait_for_text("x", region=(-1, 0, 5, 5), timeout=1))
    with pytest.raises(InvalidArgument, match="timeout -1 must be >= 0"):
        run(vm_screen(display)._assert_screen(NEEDLE, timeout=-1))
