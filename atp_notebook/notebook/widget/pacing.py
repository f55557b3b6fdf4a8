"""When the display widget sends a frame, and how (sans-I/O: every method takes ``now``).

Rules, after jupyter_rfb's (research/display.md §4) and the issue's:

- nothing is sent while no view is attached (no encoding for an unseen widget);
- at most ``max_in_flight`` frames sent and not yet acknowledged by a view, and at most
  ``fps`` frames a second: the browser's paint speed paces the kernel, so neither the
  websocket nor Jupyter's IOPub message limit (1000 msgs/s over 3 s) fills up;
- damage of a large area is sent as JPEG while the screen moves; a small area (typing)
  goes lossless at once; once the screen has been still for ``still_s``, every area sent
  as JPEG since the last exact frame is sent again losslessly, so the picture ends exact;
- a view that attaches gets the whole screen, losslessly.

Messages from views (hello, acknowledgements) travel on the kernel's shell channel, so a
cell that blocks the kernel holds them back while frames (from the atp loop) could still go
out; ipykernel 7 hands comm messages over during an *async* cell only. So the kernel's own
display of the widget counts as a view about to attach (:meth:`displayed`), and after
``stall_s`` without an acknowledgement frames go on "blind" at ``blind_fps`` for as long as
a view spoke (or the widget was displayed) in the last ``blind_limit_s``: the picture keeps
moving under a busy kernel, and a closed browser tab or a notebook run without a browser
(which say nothing) stop the encoding within that limit. Frames on the widget's own socket
(frame_socket.py) are acknowledged on it, past the shell: while every reader is there
(``direct_acks``) nothing goes blind, the limit in flight holds.

Example::

    pacer = FramePacer()
    pacer.attach(now=0.0, size=(720, 400))
    plan = pacer.next_frame(now=0.0)        # the whole screen, lossless
    pacer.acknowledged(plan.number, now=0.01)
    pacer.damage([Box(0, 0, 8, 16)], (720, 400), now=0.5)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from atp_notebook.errors import InvalidArgument
from atp_notebook.spice.display.surfaces import Box

__all__ = ["FramePacer", "FramePlan"]

# below this many damaged pixels a frame goes lossless at once (a few characters typed: raw
# costs less than JPEG's blur followed by a second, exact frame)
SMALL_AREA = 128 * 128
# pending damage beyond this many rectangles collapses to its bounding box
MAX_PENDING = 256


@dataclass(frozen=True, slots=True)
class FramePlan:
    """Send frame ``number``: ``boxes`` of a ``size`` screen, lossless or as JPEG."""

    number: int
    boxes: tuple[Box, ...]
    lossless: bool
    size: tuple[int, int]


class FramePacer:
    """Pending damage, frames in flight and the still timer of one widget."""

    def __init__(self, *, fps: float = 30.0, max_in_flight: int = 2, still_s: float = 0.3,
                 stall_s: float = 1.0, blind_fps: float = 10.0,
                 blind_limit_s: float = 30.0) -> None:
        if fps <= 0 or max_in_flight < 1 or still_s < 0 or blind_fps <= 0:
            raise InvalidArgument("FramePacer: fps and blind_fps > 0, max_in_flight >= 1, "
                                  "still_s >= 0")
        self.fps = fps
        self.max_in_flight = max_in_flight
        self.still_s = still_s
        self.stall_s = stall_s
        self.blind_fps = blind_fps
        self.blind_limit_s = blind_limit_s
        self.direct_acks = False  # acknowledgements come on the frame socket, not the shell
        self.views = 0
        self.displays = 0  # displayed by the kernel, their view's hello not heard yet
        self.size: tuple[int, int] | None = None
        self.sent = 0  # number of the last frame sent
        self.acked = 0  # highest number a view acknowledged
        self._pending: list[Box] = []
        self._lossless_next = False  # the pending damage must go exact (attach, resize)
        self._unsettled: list[Box] = []  # sent as JPEG, not yet exactly
        self._last_damage = float("-inf")
        self._last_sent = float("-inf")
        self._last_heard = float("-inf")

    # --- what happens ---------------------------------------------------------------------

    def displayed(self, now: float) -> None:
        """The kernel displayed the widget: a view will attach, maybe only once the cell
        running now ends; until its hello it counts as attached."""
        self.displays += 1
        self._last_heard = now
        self._whole_screen()

    def attach(self, now: float, size: tuple[int, int] | None = None) -> None:
        """A view appeared (or came back): it needs the whole screen, exactly."""
        self.displays = max(self.displays - 1, 0)
        self.views += 1
        self._last_heard = now
        self.acked = self.sent  # a new view acknowledges nothing sent before it
        if size is not None:
            self.size = size
        self._whole_screen()

    def resync(self, now: float) -> None:
        """A reader moved to another way in (a frame socket opened, a page fell back to the
        comm): it needs the whole screen exactly, and frames in flight on the old way will
        not be acknowledged."""
        self._last_heard = now
        self.acked = self.sent
        self._whole_screen()

    def detach(self, now: float) -> None:
        self.views = max(self.views - 1, 0)
        self._last_heard = now

    def acknowledged(self, number: int, now: float) -> None:
        self._last_heard = now
        if self.acked < number <= self.sent:
            self.acked = number

    def damage(self, rects: Iterable[Box], size: tuple[int, int], now: float) -> None:
        """The screen changed in ``rects``; a new ``size`` means the whole screen."""
        if size != self.size:
            self.size = size
            self._whole_screen()
        else:
            self._pending.extend(rects)
            if len(self._pending) > MAX_PENDING:
                self._pending = [_bounding(self._pending)]
        self._last_damage = now

    # --- the decision ---------------------------------------------------------------------

    @property
    def in_flight(self) -> int:
        return self.sent - self.acked

    def wait(self, now: float) -> float | None:
        """Seconds until :meth:`next_frame` may have something (0: now; None: nothing to do
        until an event: damage, an acknowledgement, a view)."""
        if not (self.views or self.displays) or self.size is None:
            return None
        if not self._pending and not self._unsettled:
            return None
        if not self._pending and now - self._last_damage < self.still_s:
            return self._last_damage + self.still_s - now  # waiting for the screen to settle
        interval = 1.0 / self.fps
        if self.in_flight >= self.max_in_flight:
            if self.direct_acks or now - self._last_heard > self.blind_limit_s:
                return None  # nobody has spoken for long: the view is likely gone
            stalled_at = self._last_sent + self.stall_s
            interval = max(interval, 1.0 / self.blind_fps)
            return max(stalled_at - now, self._last_sent + interval - now, 0.0)
        return max(self._last_sent + interval - now, 0.0)

    def next_frame(self, now: float) -> FramePlan | None:
        """The frame to send now (counted as sent), or None when it is not time."""
        left = self.wait(now)
        if left is None or left > 0 or self.size is None:
            return None
        if self._pending:
            boxes, self._pending = tuple(self._pending), []
            lossless = self._lossless_next or _area(boxes) <= SMALL_AREA
            self._lossless_next = False
            if lossless:
                # an exact copy of an area sent as JPEG before settles it
                self._unsettled = [u for u in self._unsettled
                                   if not any(_covers(b, u) for b in boxes)]
            else:
                self._unsettled.extend(boxes)
                if len(self._unsettled) > MAX_PENDING:
                    self._unsettled = [_bounding(self._unsettled)]
        else:
            boxes, self._unsettled, lossless = tuple(self._unsettled), [], True
        self.sent += 1
        self._last_sent = now
        return FramePlan(self.sent, boxes, lossless, self.size)

    def _whole_screen(self) -> None:
        if self.size is not None:
            self._pending = [Box(0, 0, *self.size)]
            self._unsettled = []
            self._lossless_next = True


def _area(boxes: Iterable[Box]) -> int:
    return sum(b.width * b.height for b in boxes)  # overlaps count twice: an upper bound


def _covers(outer: Box, inner: Box) -> bool:
    return inner.intersect(outer) == inner


def _bounding(boxes: list[Box]) -> Box:
    out = boxes[0]
    for box in boxes[1:]:
        out = out.union(box)
    return out
