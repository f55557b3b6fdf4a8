"""``VmScreen``: waiting on a VM's display for a needle or a text (``vm.assert_screen``).

A check runs when the display draws something that can change its answer, never on a
clock: a frame listener (on the atp loop) marks the screen dirty when a frame's damage
touches a needle's search windows (each match area grown by its margin, each OCR area) or
the text's region, or when the screen's size changes; the waiting coroutine then copies the
screen and matches it on a worker thread (OpenCV and Tesseract release the GIL), so the
loop keeps serving Spice meanwhile. Damage that arrives during a check marks the screen
dirty again, so the last change is always checked. The first check runs at once.

Past the timeout a :class:`~atp_notebook.errors.ScreenMismatch` carries the last screen
checked, the needles, every candidate's match (best first: per-area similarity, position,
diff) or the text read last.

Each operation is one coroutine on the atp loop; ``Vm`` gives its blocking and ``_async``
forms (:mod:`atp_notebook.bridge`).

Example::

    s = connect(); s.needles = load_needles("needles/")
    vm = s.vm("atp-vm1")
    vm.assert_screen("login-prompt", timeout=60)       # NeedleMatch, or ScreenMismatch
    vm.check_screen(["desktop", "error-dialog"])       # NeedleMatch or None, one look
    vm.assert_and_click("ok-button")                   # its click point
    vm.wait_for_text(re.compile(r"login: ?$", re.M), region=(0, 0, 720, 400))
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Callable, Iterable, Sequence
from typing import TypeVar

from atp_notebook.bridge import atp_async, atp_blocking
from atp_notebook.errors import InvalidArgument, ScreenMismatch
from atp_notebook.screen.match import NeedleMatch, match_needles, search_windows
from atp_notebook.screen.needle import Needle, NeedleSet
from atp_notebook.screen.ocr import TextReader, default_reader
from atp_notebook.spice.display.live import Frame, Region, region_box
from atp_notebook.spice.display.surfaces import Box, Pixels
from atp_notebook.spice.display_facade import VmDisplay, to_image
from atp_notebook.spice.facade import VmSpice

__all__ = ["DEFAULT_TIMEOUT_S", "NeedleSpec", "TextSpec", "VmScreen"]

DEFAULT_TIMEOUT_S = 30.0
# the display must be open before anything can be checked; that wait is not the caller's
# timeout (check_screen looks once, with timeout 0)
OPEN_TIMEOUT_S = 30.0

# a tag, tags (any of them), a needle, needles
NeedleSpec = str | Needle | Iterable[str] | Iterable[Needle]
TextSpec = str | re.Pattern[str]
R = TypeVar("R")


class VmScreen:
    """Screen assertions on one display of one VM; ``needle_source`` gives the needles
    that tags are looked up in (the session's)."""

    def __init__(self, display: VmDisplay, spice_input: VmSpice,
                 needle_source: Callable[[], NeedleSet],
                 reader: Callable[[], TextReader] = default_reader) -> None:
        self.display = display
        self.spice_input = spice_input
        self._needle_source = needle_source
        self._reader = reader
        self.log = logging.getLogger(f"atp.screen.{display.vm_id}")

    def __repr__(self) -> str:
        return f"<VmScreen {self.display.vm_id}:{self.display.channel_id}>"

    def needles_for(self, what: NeedleSpec) -> tuple[Needle, ...]:
        """The needles ``what`` names: a needle, needles, a tag or tags (any of them)."""
        if isinstance(what, Needle):
            return (what,)
        if isinstance(what, str):
            return self._needle_source().select(what)
        items = tuple(what)
        if items and all(isinstance(i, Needle) for i in items):
            return items  # type: ignore[return-value]
        if items and all(isinstance(i, str) for i in items):
            return self._needle_source().select(items)  # type: ignore[arg-type]
        raise InvalidArgument(f"{what!r}: give a tag, tags, a Needle or Needles")

    # --- the wait ----------------------------------------------------------------------

    async def _until(self, boxes: Sequence[Box] | None,
                     check: Callable[[Pixels], tuple[bool, R]],
                     timeout: float) -> tuple[bool, R | None, Pixels | None]:
        """Run ``check`` on the screen at once and after each frame that touches ``boxes``
        (None: any) until it passes or ``timeout`` ends: (passed, its last result, the
        screen it saw)."""
        if timeout < 0:
            raise InvalidArgument(f"timeout {timeout!r} must be >= 0")
        dirty = asyncio.Event()
        dirty.set()
        seen_size: list[tuple[int, int] | None] = [None]

        def heard(frame: Frame) -> None:  # on the atp loop
            if (boxes is None or frame.size != seen_size[0]
                    or any(frame.touches(b) for b in boxes)):
                seen_size[0] = frame.size
                dirty.set()

        handle = await self.display._add_listener(heard, max(timeout, OPEN_TIMEOUT_S))
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        result: R | None = None
        pixels: Pixels | None = None
        try:
            while True:
                if not dirty.is_set():
                    left = deadline - loop.time()
                    if left <= 0:
                        return False, result, pixels
                    try:
                        await asyncio.wait_for(dirty.wait(), left)
                    except TimeoutError:
                        return False, result, pixels
                dirty.clear()  # before the copy: a frame drawn after it checks again
                pixels = await self.display._pixels(None, OPEN_TIMEOUT_S)
                seen_size[0] = (pixels.shape[1], pixels.shape[0])
                passed, result = await asyncio.to_thread(check, pixels)
                if passed:
                    return True, result, pixels
        finally:
            handle.close()

    async def _find(self, needles: tuple[Needle, ...], timeout: float, colour: bool | None,
                    threshold: float,
                    search_ratio: float) -> tuple[bool, list[NeedleMatch], Pixels | None]:
        # a bad search_ratio is refused here, before the display is opened
        boxes = [Box(*b) for b in search_windows(needles, search_ratio)]
        read_text = self._reader().read if any(n.areas_of("ocr") for n in needles) else None

        def check(pixels: Pixels) -> tuple[bool, list[NeedleMatch]]:
            found = match_needles(pixels, needles, colour=colour, threshold=threshold,
                                  read_text=read_text, search_ratio=search_ratio)
            return found[0].ok, found

        passed, matches, pixels = await self._until(boxes, check, timeout)
        return passed, matches or [], pixels

    # --- operations --------------------------------------------------------------------

    async def _assert_screen(self, what: NeedleSpec, timeout: float = DEFAULT_TIMEOUT_S, *,
                             colour: bool | None = None, threshold: float = 0.0,
                             search_ratio: float = 0.0) -> NeedleMatch:
        """Wait until one of the needles ``what`` names matches: its NeedleMatch (the best,
        os-autoinst's order); ScreenMismatch with the evidence after ``timeout`` s.
        ``colour``: None follows each needle's ``colour`` property; ``search_ratio`` (0..1)
        widens each area's search towards the whole screen (os-autoinst's; 1: look for an
        element wherever it moved)."""
        needles = self.needles_for(what)
        passed, matches, pixels = await self._find(needles, timeout, colour, threshold,
                                                   search_ratio)
        if passed:
            self.log.debug("matched %r", matches[0])
            return matches[0]
        raise self._mismatch(needles, matches, pixels, timeout)

    async def _check_screen(self, what: NeedleSpec, timeout: float = 0.0, *,
                            colour: bool | None = None, threshold: float = 0.0,
                            search_ratio: float = 0.0) -> NeedleMatch | None:
        """Like :meth:`assert_screen` (by default one look), but None when nothing
        matched."""
        needles = self.needles_for(what)
        passed, matches, _ = await self._find(needles, timeout, colour, threshold,
                                              search_ratio)
        return matches[0] if passed else None

    async def _assert_and_click(self, what: NeedleSpec, timeout: float = DEFAULT_TIMEOUT_S,
                                *, button: str = "left", point_id: str | None = None,
                                colour: bool | None = None, threshold: float = 0.0,
                                search_ratio: float = 0.0) -> NeedleMatch:
        """:meth:`assert_screen`, then click the match's click point (os-autoinst's: the
        last area's with one, else the last area's centre, where it was found)."""
        found = await self._assert_screen(what, timeout, colour=colour, threshold=threshold,
                                          search_ratio=search_ratio)
        x, y = found.click_point(point_id)
        await self.spice_input._click(x, y, button, OPEN_TIMEOUT_S)
        return found

    async def _wait_for_text(self, text: TextSpec, region: Region | None = None,
                             timeout: float = DEFAULT_TIMEOUT_S) -> str:
        """Wait until OCR reads ``text`` on the screen (or in ``region``, (x, y, width,
        height)): a string is looked for with runs of whitespace made one space, a compiled
        pattern is searched in the text as read. Returns the text read; ScreenMismatch
        (``.text``: what was read last) after ``timeout`` s."""
        box = region_box(region)
        if isinstance(text, str):
            wanted = " ".join(text.split())
            if not wanted:
                raise InvalidArgument("wait_for_text: the text to wait for is empty")

            def found_in(read: str) -> bool:
                return wanted in " ".join(read.split())
        elif isinstance(text, re.Pattern):
            def found_in(read: str) -> bool:
                return text.search(read) is not None
        else:
            raise InvalidArgument(f"wait_for_text: {text!r} is not a string or a compiled "
                                  "pattern")
        reader = self._reader()

        def check(pixels: Pixels) -> tuple[bool, str]:
            read = reader.read(pixels, region)
            return found_in(read), read

        passed, read, pixels = await self._until(None if box is None else [box], check,
                                                 timeout)
        if passed and read is not None:
            return read
        where = "" if region is None else f" in {tuple(region)}"
        shown = text.pattern if isinstance(text, re.Pattern) else text
        raise ScreenMismatch(
            f"{self.display.vm_id}: {shown!r} was not read on the screen{where} within "
            f"{timeout:g} s; read last: {(read or '').strip()[:200]!r}",
            screen=None if pixels is None else to_image(pixels), text=read)

    def _mismatch(self, needles: tuple[Needle, ...], matches: list[NeedleMatch],
                  pixels: Pixels | None, timeout: float) -> ScreenMismatch:
        names = ", ".join(n.name for n in needles[:8]) + (" ..." if len(needles) > 8 else "")
        best = matches[0] if matches else None
        detail = "" if best is None else f"; best {describe(best)}"
        return ScreenMismatch(
            f"{self.display.vm_id}: no needle matched within {timeout:g} s (of {names})"
            f"{detail}",
            screen=None if pixels is None else to_image(pixels), needles=needles, best=best,
            candidates=tuple(matches),
            hint="ScreenMismatch.best has each area's similarity, position and diff")

    assert_screen = atp_blocking(_assert_screen)
    assert_screen_async = atp_async(_assert_screen)
    check_screen = atp_blocking(_check_screen)
    check_screen_async = atp_async(_check_screen)
    assert_and_click = atp_blocking(_assert_and_click)
    assert_and_click_async = atp_async(_assert_and_click)
    wait_for_text = atp_blocking(_wait_for_text)
    wait_for_text_async = atp_async(_wait_for_text)


def describe(found: NeedleMatch) -> str:
    """One line of numbers: ``name: area 0 0.912 < 0.96 at 400,300 (moved -12,+7)``."""
    if found.reason:
        return f"{found.needle.name}: {found.reason}"
    parts = []
    for i, a in enumerate(found.areas):
        need = a.area.match / 100
        sign = ">=" if a.passed else "<"
        dx, dy = a.offset
        moved = f" (moved {dx:+d},{dy:+d})" if (dx, dy) != (0, 0) else ""
        parts.append(f"area {i} ({a.area.type}) {a.similarity:.3f} {sign} {need:.2f} at "
                     f"{a.position[0]},{a.position[1]}{moved}")
    return f"{found.needle.name}: " + "; ".join(parts)
