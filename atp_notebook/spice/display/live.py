"""A display channel drawn live: a worker thread of its own draws, the atp loop only relays.

The channel's reader (on the atp loop) parses messages and hands every event to
:meth:`LiveDisplay.submit`; after each socket read it calls :meth:`LiveDisplay.end_batch`.
The worker thread applies the events in order to a :class:`DisplayRenderer` (the codecs and
numpy release the GIL, so pings, input and other VMs go on meanwhile) and, at the end of each
batch, posts back to the loop what it did: the number of messages drawn — only then are they
acknowledged, so the server's flow control (it stops after 2 x window unacknowledged
messages) sees what was really drawn, and the worker's queue stays bounded by that window —
and, when the primary surface changed, a :class:`Frame`.

Frames: damage of the primary surface since the previous frame, merged (surfaces.py). While
the worker is behind (more batches queued) it draws on and publishes at most one frame every
``FRAME_INTERVAL_S``, so a flood of small draws costs the loop a bounded number of wake-ups.

Cross-channel order: a session's display channels share the pixmap cache, and the server
orders their use of it with WAIT_FOR_CHANNELS and INVAL_ALL_PIXMAPS wait lists (progress.py).
With a ``progress`` handle the worker reports each message's serial once drawn, and blocks on
such a wait until the other channel's worker has drawn the message named.

A draw the renderer refuses (a RemoteProtocolError for hostile data, or a bug) stops the
worker for good; ``on_failure`` is called on the loop with the error, and the owner ends the
channel with it. Nothing more is drawn or acknowledged afterwards.

Example (on the atp loop, inside SpiceVmConnection)::

    live = LiveDisplay("atp-vm1", 0, renderer, loop, on_acknowledged=ack,
                       on_failure=fail)
    live.submit(event, serial)      # for each event of the read (serial: 0 if unknown)
    live.end_batch(protocol.take_unacknowledged(), protocol.last_message_serial)
    frame = await live.wait_for_change(None, timeout=5)
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

import numpy as np

from atp_notebook.errors import AtpError, ChannelClosed, InvalidArgument, OperationTimeout
from atp_notebook.listeners import ListenerHandle, Listeners
from atp_notebook.spice.display.progress import ChannelProgress
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.display.surfaces import Box, Pixels
from atp_notebook.spice.proto.common import ChannelEvent, WaitForChannels
from atp_notebook.spice.proto.display import Mark
from atp_notebook.spice.proto.display_cache import InvalAllPixmaps

__all__ = ["DisplayStats", "Frame", "LiveDisplay", "Region", "region_box"]

# at most this many frames per second while the worker has more queued (a still frame goes
# out at once when the queue runs dry)
FRAME_INTERVAL_S = 1 / 60
# the worker draws this much nicer than the loop: when they share a CPU, the scheduler lets
# the loop's pings, acks and input run first and the drawing waits
WORKER_NICENESS = 10
# and the GIL changes hands after at most this long (CPython's default is 5 ms): drawing
# runs Python between its GIL-free decodes, and a key press waiting for the GIL behind it
# waited up to the full interval (the isolation bench's key p99: 2.2x still at 5 ms, 1.1x
# at 0.5 ms). Set once for the process, never raised back.
GIL_SWITCH_INTERVAL_S = 0.0005

Region = tuple[int, int, int, int]  # x, y, width, height


def region_box(region: Region | None) -> Box | None:
    """``(x, y, width, height)`` as a Box; None stays None (the whole screen)."""
    if region is None:
        return None
    try:
        x, y, width, height = (int(v) for v in region)
    except (TypeError, ValueError):
        raise InvalidArgument(f"region {region!r} is not (x, y, width, height)") from None
    if width <= 0 or height <= 0 or x < 0 or y < 0:
        raise InvalidArgument(f"region {region!r}: x and y must be >= 0, width and height > 0")
    return Box(x, y, x + width, y + height)


@dataclass(frozen=True, slots=True)
class Frame:
    """The primary surface changed: ``rects`` (left, top, right, bottom boxes) in frame
    ``number`` (1 for the first), at ``time`` (time.monotonic()), on a ``size`` screen."""

    number: int
    rects: tuple[Box, ...]
    time: float
    size: tuple[int, int]

    def touches(self, box: Box | None) -> bool:
        return box is None or any(not r.intersect(box).empty for r in self.rects)


@dataclass(frozen=True, slots=True)
class DisplayStats:
    """What the worker has done: ``messages`` events drawn, ``frames`` published,
    ``stream_frames`` video frames decoded, ``draw_seconds`` the worker's CPU time,
    ``queued`` events waiting."""

    messages: int
    frames: int
    stream_frames: int
    draw_seconds: float
    queued: int


class _Batch:
    """End of one socket read: ``messages`` to acknowledge once everything before is drawn;
    ``serial``: the read's last message (0: not known)."""

    __slots__ = ("messages", "serial")

    def __init__(self, messages: int, serial: int) -> None:
        self.messages = messages
        self.serial = serial


_STOP = object()


class LiveDisplay:
    """One display channel's renderer, worker thread, frames and waiters."""

    def __init__(self, vm_id: str, channel_id: int, renderer: DisplayRenderer,
                 loop: asyncio.AbstractEventLoop, *,
                 on_acknowledged: Callable[[int], None],
                 on_failure: Callable[[BaseException], None],
                 listeners: Listeners[Frame] | None = None,
                 progress: ChannelProgress | None = None,
                 wait_timeout: float = 10.0) -> None:
        self.vm_id = vm_id
        self.channel_id = channel_id
        self.renderer = renderer
        self.lock = threading.Lock()  # held while drawing and while reading pixels
        self.log = logging.getLogger(f"atp.spice.{vm_id}.display{channel_id or ''}")
        # the owner's, so listeners outlive a channel reopened
        self.listeners: Listeners[Frame] = (listeners if listeners is not None
                                            else Listeners(self.log))  # an empty one is falsy
        self.error: BaseException | None = None
        self.last_frame: Frame | None = None
        self._loop = loop
        self._on_acknowledged = on_acknowledged
        self._on_failure = on_failure
        self._progress = progress
        self._wait_timeout = wait_timeout
        self._queue: queue.SimpleQueue[object] = queue.SimpleQueue()
        # events submitted (loop thread) and taken (worker): each side writes its own counter
        self._submitted = 0
        self._taken = 0
        self._drawn = 0
        self._frames = 0
        self._draw_seconds = 0.0
        self._last_publish = 0.0
        self._waiters: list[tuple[Box | None, asyncio.Future[Frame]]] = []
        self._ended = asyncio.Event()
        # set on the loop once a MARK is drawn: the server sends it after the whole first
        # picture of the screen (dcc_start), which may take several reads to arrive
        self._marked = asyncio.Event()
        self._mark_drawn = False  # worker side: a MARK drawn in the batch under way
        if sys.getswitchinterval() > GIL_SWITCH_INTERVAL_S:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
        self._thread = threading.Thread(target=self._run, daemon=True,
                                        name=f"atp-display-{vm_id}-{channel_id}")
        self._thread.start()

    def __repr__(self) -> str:
        state = "failed" if self.error else "ended" if self._ended.is_set() else "live"
        return f"<LiveDisplay {self.vm_id}:{self.channel_id} {state} frame={self._frames}>"

    # --- from the channel's reader (atp loop) --------------------------------------------

    def submit(self, event: ChannelEvent, serial: int = 0) -> None:
        """Draw ``event``, the server's message ``serial`` on this channel (0: not known;
        the progress then moves at the end of the batch only)."""
        if self.error is None:
            self._submitted += 1
            self._queue.put((event, serial))

    def end_batch(self, messages: int, serial: int = 0) -> None:
        """The events of one read are all submitted; ``messages`` of them to acknowledge
        once drawn, the last one numbered ``serial``."""
        self._queue.put(_Batch(messages, serial))

    def close(self, error: BaseException | None = None) -> None:
        """The channel ended: stop the worker (it finishes the event under way) and fail
        every waiter with ``error`` or a ChannelClosed."""
        if self._ended.is_set():
            return
        self._ended.set()
        self._queue.put(_STOP)
        if self._progress is not None:
            self._progress.end()  # whoever waits for this channel waits no more
        if self.error is None and error is not None:
            self.error = error  # later calls say why too (the channel's reader failed)
        failure = error or self.error or ChannelClosed(
            f"{self.vm_id}: display channel {self.channel_id} closed")
        waiters, self._waiters = self._waiters, []
        for _, future in waiters:
            if not future.done():
                future.set_exception(_as_closed(self, failure))

    # --- the worker thread ------------------------------------------------------------------

    def _run(self) -> None:
        with contextlib.suppress(OSError):  # (a platform without per-thread niceness)
            os.setpriority(os.PRIO_PROCESS, 0, os.getpriority(os.PRIO_PROCESS, 0)
                           + WORKER_NICENESS)  # Linux: 0 is this thread
        started = time.thread_time()
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if isinstance(item, _Batch):
                self._end_of_batch(item)
                continue
            self._taken += 1
            if self.error is not None:
                continue  # failed: nothing more is drawn
            event, serial = cast("tuple[ChannelEvent, int]", item)
            try:
                if (isinstance(event, WaitForChannels | InvalAllPixmaps)
                        and self._progress is not None):
                    self._progress.wait(event.waits, self._wait_timeout)
                with self.lock:
                    self.renderer.apply(event)
                self._drawn += 1
                if serial and self._progress is not None:
                    self._progress.drawn(serial)
                if isinstance(event, Mark):
                    self._mark_drawn = True  # told with the batch's frame, after it
            except BaseException as exc:  # every failure ends the channel
                self.error = exc
                if not isinstance(exc, AtpError):
                    self.log.exception("display draw failed")
                self._post(self._failed, exc)
            self._draw_seconds = time.thread_time() - started

    def _end_of_batch(self, batch: _Batch) -> None:
        if self.error is not None:
            return
        if batch.serial and self._progress is not None:
            self._progress.drawn(batch.serial)
        now = time.monotonic()
        frame = None
        marked, self._mark_drawn = self._mark_drawn, False
        # after a MARK the picture goes out at once: whoever waits for the first picture
        # must find every frame of it already published
        if marked or self._queue.empty() or now - self._last_publish >= FRAME_INTERVAL_S:
            frame = self._take_frame(now)
        self._post(self._batch_drawn, batch.messages, frame, marked)

    def _take_frame(self, now: float) -> Frame | None:
        with self.lock:
            primary = self.renderer.primary
            if primary is None:
                return None
            rects = primary.take_damage()
            size = (primary.width, primary.height)
        if not rects:
            return None
        self._frames += 1
        self._last_publish = now
        return Frame(self._frames, tuple(rects), now, size)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody listens
            self._loop.call_soon_threadsafe(callback, *args)

    # --- back on the loop ---------------------------------------------------------------

    def _batch_drawn(self, messages: int, frame: Frame | None, marked: bool) -> None:
        if messages and not self._ended.is_set():
            self._on_acknowledged(messages)
        if frame is not None:
            self._publish(frame)
        if marked:
            self._marked.set()

    def _publish(self, frame: Frame) -> None:
        self.last_frame = frame
        still: list[tuple[Box | None, asyncio.Future[Frame]]] = []
        for box, future in self._waiters:
            if future.done():
                continue
            if frame.touches(box):
                future.set_result(frame)
            else:
                still.append((box, future))
        self._waiters = still
        if len(self.listeners):
            self.listeners.emit(frame)

    @property
    def marked(self) -> bool:
        """Whether the server's first whole picture (up to its MARK) has been drawn."""
        return self._marked.is_set()

    async def wait_marked(self, timeout: float) -> None:
        """Until the first whole picture is drawn (its MARK), or the display ends."""
        if self._marked.is_set():
            return
        if self._ended.is_set():
            raise _as_closed(self, self.error)
        marked = asyncio.ensure_future(self._marked.wait())
        ended = asyncio.ensure_future(self._ended.wait())
        try:
            done, _ = await asyncio.wait([marked, ended], timeout=timeout,
                                         return_when=asyncio.FIRST_COMPLETED)
        finally:
            marked.cancel()
            ended.cancel()
        if self._marked.is_set():
            return
        if not done:
            raise OperationTimeout(f"{self.vm_id}: display channel {self.channel_id} did not "
                                   f"draw its first picture within {timeout:g} s")
        raise _as_closed(self, self.error)

    def _failed(self, error: BaseException) -> None:
        self._on_failure(error)
        self.close(error)

    # --- what the API reads (any thread for pixels, the loop for waits) --------------------

    @property
    def ended(self) -> bool:
        return self._ended.is_set()

    def stats(self) -> DisplayStats:
        return DisplayStats(self._drawn, self._frames, self.renderer.stream_frames,
                            round(self._draw_seconds, 6), self.queued)

    @property
    def queued(self) -> int:
        """Events received and not drawn yet."""
        return max(self._submitted - self._taken, 0)

    def pixels(self, box: Box | None = None) -> Pixels:
        """A copy of the primary surface (or ``box`` of it), (h, w, 4) B,G,R,X."""
        with self.lock:
            primary = self.renderer.primary
            if primary is None:
                raise ChannelClosed(f"{self.vm_id}: display channel {self.channel_id} has no "
                                    "screen surface yet")
            if box is None:
                return primary.pixels.copy()
            inside = box.intersect(primary.bounds)
            if inside != box:
                raise InvalidArgument(
                    f"region {box.left},{box.top},{box.right - box.left},"
                    f"{box.bottom - box.top} is not inside the {primary.width}x"
                    f"{primary.height} screen of {self.vm_id}")
            return np.ascontiguousarray(primary.pixels[box.top:box.bottom,
                                                       box.left:box.right])

    @property
    def size(self) -> tuple[int, int] | None:
        primary = self.renderer.primary
        return None if primary is None else (primary.width, primary.height)

    def add_listener(self, listener: Callable[[Frame], None]) -> ListenerHandle:
        """Hear every Frame (on the atp loop) until the handle closes."""
        return self.listeners.add(listener)

    async def wait_for_change(self, box: Box | None, timeout: float) -> Frame:
        """The next frame whose damage touches ``box`` (None: any)."""
        if self._ended.is_set():
            raise _as_closed(self, self.error)
        future: asyncio.Future[Frame] = self._loop.create_future()
        self._waiters.append((box, future))
        try:
            return await asyncio.wait_for(future, timeout)
        except TimeoutError:
            where = "" if box is None else (f" in {box.left},{box.top},"
                                            f"{box.right - box.left},{box.bottom - box.top}")
            raise OperationTimeout(f"{self.vm_id}: the screen did not change{where} within "
                                   f"{timeout:g} s") from None
        finally:
            self._waiters = [(b, f) for b, f in self._waiters if f is not future]

    async def wait_still(self, seconds: float, box: Box | None, timeout: float) -> None:
        """Until ``box`` (None: the screen) has not changed for ``seconds`` and everything
        received is drawn; OperationTimeout when that takes longer than ``timeout``."""
        if seconds < 0 or timeout < 0:
            raise InvalidArgument("wait_still: seconds and timeout must be >= 0")
        deadline = self._loop.time() + timeout
        while True:
            left = deadline - self._loop.time()
            if left < seconds:
                raise OperationTimeout(f"{self.vm_id}: the screen did not stay still for "
                                       f"{seconds:g} s within {timeout:g} s")
            try:
                await self.wait_for_change(box, seconds)
            except OperationTimeout:
                if not self.queued:
                    return


def _as_closed(live: LiveDisplay, error: BaseException | None) -> ChannelClosed:
    why = error.message if isinstance(error, AtpError) else (str(error) if error else "")
    return ChannelClosed(f"{live.vm_id}: display channel {live.channel_id} ended"
                         + (f": {why}" if why else ""),
                         hint="the next display call opens it again")
