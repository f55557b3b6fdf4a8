"""LiveDisplay: real display-channel bytes from the lab (atp-vm1's opening session) drawn by
the worker thread, acknowledged only once drawn, published as frames; a draw the renderer
refuses ends the display (its waiters hear it) and nothing more is acknowledged.

No sockets: the protocol is fed the recorded bytes and its output read back, the worker and
an asyncio loop are the real ones."""

from __future__ import annotations

import asyncio
import gzip
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from atp_notebook.errors import (
    ChannelClosed,
    InvalidArgument,
    OperationTimeout,
    RemoteProtocolError,
)
from atp_notebook.spice.codecs.images import ImageState, decode_image
from atp_notebook.spice.display.live import (
    GIL_SWITCH_INTERVAL_S,
    WORKER_NICENESS,
    Frame,
    LiveDisplay,
    region_box,
)
from atp_notebook.spice.display.raster import image_pixels
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.display.surfaces import Box
from atp_notebook.spice.display_facade import to_image
from atp_notebook.spice.proto.common import ChannelEvent, Ping, SetAck, UnknownMessage
from atp_notebook.spice.proto.constants import ChannelType, Msgc
from atp_notebook.spice.proto.display import DisplayProtocol, DrawCopy, SurfaceCreated
from atp_notebook.spice.proto.framing import MessageReader

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice" / "display"
SESSION = gzip.decompress((FIXTURES / "atp-vm1-display-session.bin.gz").read_bytes())
WAIT_S = 10.0


class Harness:
    """A protocol in manual-ACK mode feeding a LiveDisplay, as VmDisplays wires them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.protocol = DisplayProtocol(ChannelType.DISPLAY, manual_acks=True)
        self.failures: list[BaseException] = []
        self.acknowledged: list[int] = []
        self.live = LiveDisplay("vm", 0, DisplayRenderer(), loop,
                                on_acknowledged=self._acknowledged,
                                on_failure=self.failures.append)

    def _acknowledged(self, messages: int) -> None:
        self.acknowledged.append(messages)
        self.protocol.acknowledge(messages)

    def feed(self, data: bytes) -> list[ChannelEvent]:
        events = self.protocol.receive_data(data)
        for event in events:
            if not isinstance(event, SetAck | Ping | UnknownMessage):
                self.live.submit(event)
        self.live.end_batch(self.protocol.take_unacknowledged())
        return events

    def acks_sent(self) -> int:
        reader = MessageReader(mini_header=True)
        reader.feed(self.protocol.data_to_send())
        sent = []
        while (message := reader.next_message()) is not None:
            sent.append(message.msg_type)
        return sent.count(Msgc.ACK)


@pytest.fixture
def loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def messages(data: bytes) -> list[bytes]:
    """``data`` cut into its whole messages (mini headers: u16 type, u32 size)."""
    out, at = [], 0
    while at < len(data):
        size = int.from_bytes(data[at + 2:at + 6], "little")
        out.append(data[at:at + 6 + size])
        at += 6 + size
    return out


async def settle(harness: Harness) -> None:
    """Until the worker has drawn everything and its batch reports reached the loop."""
    for _ in range(1000):
        if not harness.live.queued and harness.live._queue.empty():
            break
        await asyncio.sleep(0.005)
    await asyncio.sleep(0.02)


def test_the_opening_session_is_drawn_and_published_as_the_first_frame(
        loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        harness = Harness(loop)
        first = asyncio.ensure_future(harness.live.wait_for_change(None, WAIT_S))
        await asyncio.sleep(0)
        events = harness.feed(SESSION[:_first_draw_end()])
        frame = await first
        assert isinstance(frame, Frame) and frame.number == 1 and frame.size == (720, 400)
        assert frame.rects == (Box(0, 0, 720, 400),)
        assert any(isinstance(e, SurfaceCreated) for e in events)
        # the whole screen is the first DRAW_COPY's image, decoded on its own here
        first_draw = next(e for e in events if isinstance(e, DrawCopy))
        assert first_draw.image is not None
        expected = image_pixels(decode_image(first_draw.image, ImageState()))
        assert np.array_equal(harness.live.pixels(), expected)
        assert to_image(harness.live.pixels()).size == (720, 400)
        harness.live.close()

    loop.run_until_complete(run())


def _first_draw_end() -> int:
    """Bytes of the session up to and including its first DRAW_COPY (the whole screen)."""
    at = 0
    for message in messages(SESSION):
        at += len(message)
        if int.from_bytes(message[:2], "little") == 304:
            return at
    raise AssertionError("no DRAW_COPY in the session")


def test_messages_are_acknowledged_only_once_drawn(loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        harness = Harness(loop)
        parts = messages(SESSION)
        harness.feed(b"".join(parts))
        received = harness.protocol.metrics.messages_in - 1  # SET_ACK starts the window
        assert harness.acks_sent() == 0  # nothing drawn yet: the reader acks nothing itself
        await settle(harness)
        assert sum(harness.acknowledged) == received
        assert harness.acks_sent() == received // harness.protocol.ack_window
        assert harness.live.stats().messages >= received - sum(
            1 for p in parts if int.from_bytes(p[:2], "little") == 4)  # pings are not drawn
        harness.live.close()

    loop.run_until_complete(run())


def test_a_refused_draw_ends_the_display_and_its_waiters(
        loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        harness = Harness(loop)
        harness.feed(SESSION[:_first_draw_end()])
        await settle(harness)
        waiting = asyncio.ensure_future(harness.live.wait_for_change(None, WAIT_S))
        await asyncio.sleep(0)
        acked = sum(harness.acknowledged)
        first = next(e for e in DisplayProtocol(ChannelType.DISPLAY).receive_data(SESSION)
                     if isinstance(e, DrawCopy))
        hostile = DrawCopy(7, first.box, None, first.image, first.src_area, first.rop,
                           first.scale_mode, 0, False)  # surface 7 was never created
        harness.live.submit(hostile)
        harness.live.end_batch(1)
        with pytest.raises(ChannelClosed, match="surface 7"):
            await waiting
        assert len(harness.failures) == 1
        assert isinstance(harness.failures[0], RemoteProtocolError)
        assert sum(harness.acknowledged) == acked  # the refused message is not acknowledged
        assert harness.live.ended
        with pytest.raises(ChannelClosed):
            await harness.live.wait_for_change(None, WAIT_S)

    loop.run_until_complete(run())


def test_wait_still_returns_once_quiet_and_times_out_while_changing(
        loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        harness = Harness(loop)
        harness.feed(SESSION[:_first_draw_end()])
        await settle(harness)
        await harness.live.wait_still(0.05, None, WAIT_S)
        with pytest.raises(OperationTimeout, match="did not change in 0,0,4,4"):
            await harness.live.wait_for_change(Box(0, 0, 4, 4), 0.05)
        with pytest.raises(OperationTimeout, match="still"):
            await harness.live.wait_still(1.0, None, 0.5)
        harness.live.close()

    loop.run_until_complete(run())


def test_a_region_outside_the_screen_is_refused(loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        harness = Harness(loop)
        harness.feed(SESSION[:_first_draw_end()])
        await settle(harness)
        assert harness.live.pixels(Box(700, 390, 720, 400)).shape == (10, 20, 4)
        with pytest.raises(InvalidArgument, match="not inside the 720x400 screen"):
            harness.live.pixels(Box(700, 390, 721, 400))
        harness.live.close()

    loop.run_until_complete(run())


@pytest.mark.parametrize(("region", "expected"), [
    (None, None),
    ((0, 0, 1, 1), Box(0, 0, 1, 1)),
    ((10, 20, 30, 40), Box(10, 20, 40, 60)),
])
def test_region_boxes(region: tuple[int, int, int, int] | None, expected: Box | None) -> None:
    assert region_box(region) == expected


@pytest.mark.parametrize("region", [(0, 0, 0, 1), (-1, 0, 2, 2), (1, 2, 3), "abc", (1, 2, 3, "x")])
def test_bad_regions_are_refused(region: object) -> None:
    with pytest.raises(InvalidArgument, match="region"):
        region_box(region)  # type: ignore[arg-type]


def test_the_first_picture_is_whole_only_once_its_mark_is_drawn(
        loop: asyncio.AbstractEventLoop) -> None:
    async def run() -> None:
        harness = Harness(loop)
        parts = messages(SESSION)
        draw = next(i for i, p in enumerate(parts) if int.from_bytes(p[:2], "little") == 304)
        mark = next(i for i, p in enumerate(parts) if int.from_bytes(p[:2], "little") == 102)
        assert draw < mark
        # the surface alone: a frame (the new, empty surface), but not the first picture
        frame = asyncio.ensure_future(harness.live.wait_for_change(None, WAIT_S))
        await asyncio.sleep(0)
        harness.feed(b"".join(parts[:draw]))
        assert (await frame).number == 1
        assert not harness.live.marked
        with pytest.raises(OperationTimeout, match="first picture"):
            await harness.live.wait_marked(0.2)
        waiting = asyncio.ensure_future(harness.live.wait_marked(WAIT_S))
        harness.feed(b"".join(parts[draw:mark + 1]))
        await waiting
        assert harness.live.marked and harness.live.pixels().any()
        harness.live.close()
        ended = Harness(loop)  # a display that ended before its MARK says why
        ended.live.close(RemoteProtocolError("SURFACE_CREATE: bad"))
        with pytest.raises(ChannelClosed, match="SURFACE_CREATE: bad"):
            await ended.live.wait_marked(WAIT_S)

    loop.run_until_complete(run())


def test_the_worker_draws_nicer_than_the_loop(loop: asyncio.AbstractEventLoop) -> None:
    """On a shared CPU the scheduler runs the loop (pings, acks, input) before the drawing."""
    harness = Harness(loop)
    try:
        (worker,) = [t for t in threading.enumerate() if t.name == "atp-display-vm-0"]
        assert worker.native_id is not None
        ours = os.getpriority(os.PRIO_PROCESS, 0)
        expected = min(ours + WORKER_NICENESS, 19)
        deadline = time.monotonic() + WAIT_S  # it sets its own niceness as it starts
        while (os.getpriority(os.PRIO_PROCESS, worker.native_id) != expected
               and time.monotonic() < deadline):
            time.sleep(0.01)
        assert os.getpriority(os.PRIO_PROCESS, worker.native_id) == expected
        assert os.getpriority(os.PRIO_PROCESS, 0) == ours  # the caller's own is unchanged
    finally:
        harness.live.close()


def test_a_live_display_shortens_the_gil_hand_over(loop: asyncio.AbstractEventLoop) -> None:
    """A key press waiting for the GIL behind the drawing waits at most this long."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(0.005)  # CPython's default
    try:
        harness = Harness(loop)
        harness.live.close()
        assert sys.getswitchinterval() == GIL_SWITCH_INTERVAL_S
    finally:
        sys.setswitchinterval(before)
