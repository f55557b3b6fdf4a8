"""WAIT_FOR_CHANNELS between display channels: DrawProgress on its own (table-driven), and two
LiveDisplays sharing a pixmap cache, where the one told to wait must not copy from the cache
before the other has drawn the image into it."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import numpy as np
import pytest

from atp_notebook.errors import RemoteProtocolError
from atp_notebook.spice.display.live import LiveDisplay
from atp_notebook.spice.display.pixmap_cache import PixmapCache
from atp_notebook.spice.display.progress import DrawProgress
from atp_notebook.spice.display.renderer import DisplayRenderer
from atp_notebook.spice.proto.common import ChannelWait, WaitForChannels
from atp_notebook.spice.proto.constants import ChannelType, SurfaceFlags
from atp_notebook.spice.proto.display import SurfaceCreated
from atp_notebook.spice.proto.display_cache import InvalAllPixmaps
from tests.unit.renderer_messages import CACHE_ME, bitmap32, cached, draw_copy, words

DISPLAY, CURSOR = ChannelType.DISPLAY, ChannelType.CURSOR
SHORT_S = 0.2  # a wait that cannot succeed gives up after this
WAIT_S = 10.0


def display_wait(channel_id: int, serial: int, kind: ChannelType = DISPLAY) -> ChannelWait:
    return ChannelWait(kind, channel_id, serial)


# (what: channel 1 drew up to ``drawn`` (None: not open), the wait, whether it returns)
CASES = [
    ("reached", 5, display_wait(1, 5), True),
    ("passed", 9, display_wait(1, 5), True),
    ("not yet", 4, display_wait(1, 5), False),
    ("a channel never opened", None, display_wait(1, 5), True),
    ("our own channel", 0, display_wait(0, 99), True),
    ("a cursor channel", 0, display_wait(1, 99, CURSOR), True),
]


@pytest.mark.parametrize(("what", "drawn", "wait", "returns"), CASES,
                         ids=[c[0] for c in CASES])
def test_a_wait_returns_once_the_channel_named_has_drawn_that_far(
        what: str, drawn: int | None, wait: ChannelWait, returns: bool) -> None:
    progress = DrawProgress()
    if drawn is not None:
        progress.open(1).drawn(drawn)
    if returns:
        progress.wait([wait], own_id=0, timeout=SHORT_S)
    else:
        with pytest.raises(RemoteProtocolError, match="display channel 1 drew up to "
                                                      "message 4, not 5"):
            progress.wait([wait], own_id=0, timeout=SHORT_S)


def test_a_channel_that_ends_or_reopens_releases_its_waiters_and_old_reports_count_for_nothing(
        ) -> None:
    progress = DrawProgress()
    old = progress.open(1)
    ended = threading.Timer(SHORT_S / 4, old.end)
    ended.start()
    progress.wait([display_wait(1, 5)], own_id=0, timeout=WAIT_S)  # returns: it ended
    ended.join()
    new = progress.open(1)
    old.drawn(50)  # the old worker finishing late: not the new channel's serials
    assert new.serial == 0
    with pytest.raises(RemoteProtocolError):
        progress.wait([display_wait(1, 5)], own_id=0, timeout=SHORT_S)


# --- two live display channels sharing one pixmap cache --------------------------------------

SIZE = 8
IMAGE_ID = 77
RED = 0x00FF0000


class Pair:
    """Display channels 0 and 1 of one session, wired as VmDisplays wires them."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        cache, progress = PixmapCache(1 << 20), DrawProgress()
        self.failures: list[BaseException] = []
        self.lives = [LiveDisplay("vm", channel_id, DisplayRenderer(pixmap_cache=cache), loop,
                                  on_acknowledged=lambda _n: None,
                                  on_failure=self.failures.append,
                                  progress=progress.open(channel_id), wait_timeout=WAIT_S)
                      for channel_id in (0, 1)]
        for live in self.lives:
            live.submit(SurfaceCreated(0, SIZE, SIZE, 32, SurfaceFlags.PRIMARY), 1)

    def close(self) -> None:
        for live in self.lives:
            live.close()


@pytest.fixture
def pair() -> Iterator[Pair]:
    loop = asyncio.new_event_loop()
    pair = Pair(loop)
    yield pair
    pair.close()
    loop.close()


def copied_from_cache(pair: Pair) -> bool:
    """Channel 0's screen shows the image channel 1 put in the cache."""
    return bool((pair.lives[0].pixels()[:, :, 2] == 0xFF).all())


@pytest.mark.parametrize("wait", [WaitForChannels((display_wait(1, 2),)),
                                  InvalAllPixmaps((display_wait(1, 2),))],
                         ids=["WAIT_FOR_CHANNELS", "INVAL_ALL_PIXMAPS"])
def test_a_channel_told_to_wait_copies_from_the_cache_only_after_the_other_drew(
        pair: Pair, wait: WaitForChannels | InvalAllPixmaps) -> None:
    first, second = pair.lives
    box = (0, 0, SIZE, SIZE)
    # channel 0: wait for channel 1's message 2 (the draw that caches the image), then use it;
    # with INVAL_ALL_PIXMAPS the cache empties once channel 1 has drawn, so channel 0 caches
    # the image itself and takes it back from the cache
    first.submit(wait, 2)
    if isinstance(wait, InvalAllPixmaps):
        first.submit(draw_copy(bitmap32(IMAGE_ID, words([[RED] * SIZE] * SIZE), CACHE_ME),
                               box), 3)
    first.submit(draw_copy(cached(IMAGE_ID, SIZE, SIZE), box), 4)
    first.end_batch(4, 4)
    time.sleep(SHORT_S)  # long enough for channel 0 to have missed the cache without the wait
    assert not pair.failures
    second.submit(draw_copy(bitmap32(IMAGE_ID, words([[RED] * SIZE] * SIZE), CACHE_ME), box), 2)
    second.end_batch(2, 2)
    deadline = time.monotonic() + WAIT_S
    while not copied_from_cache(pair) and not pair.failures and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not pair.failures
    assert copied_from_cache(pair)
    assert np.array_equal(first.pixels(), second.pixels())


def test_a_wait_for_a_message_that_never_comes_ends_only_the_waiting_channel() -> None:
    loop = asyncio.new_event_loop()
    progress = DrawProgress()
    failures: list[BaseException] = []
    live = LiveDisplay("vm", 0, DisplayRenderer(), loop, on_acknowledged=lambda _n: None,
                       on_failure=failures.append, progress=progress.open(0),
                       wait_timeout=SHORT_S)
    other = progress.open(1)
    other.drawn(3)
    try:
        live.submit(WaitForChannels((display_wait(1, 40),)), 1)
        live.end_batch(1, 1)
        deadline = time.monotonic() + WAIT_S
        while live.error is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert isinstance(live.error, RemoteProtocolError)
        assert "display channel 1 drew up to message 3, not 40" in str(live.error)
        other.drawn(40)  # the other channel goes on: nothing of it waited on this one
        assert other.serial == 40
    finally:
        live.close()
        loop.close()


# --- the serials VmDisplays counts, against the protocol's, on a small server -----------------


def test_the_serials_counted_per_message_agree_with_the_protocol(
        caplog: pytest.LogCaptureFixture) -> None:
    """Several reads of a 3 MiB first screen and a few small draws: the serial each event is
    given (one per message, mini header) ends each batch where the protocol's count is."""
    from atp_notebook.spice.proto.constants import DisplayMsg
    from tests import hostile_spice
    from tests.unit import test_display_hostile as hostile

    width, height = 1024, 768
    steps = [
        hostile_spice.Send(DisplayMsg.INVAL_ALL_PALETTES),
        hostile_spice.Send(DisplayMsg.SURFACE_CREATE,
                           hostile.surface_create(0, width, height, primary=True)),
        hostile_spice.Send(DisplayMsg.DRAW_COPY, hostile.draw_copy(
            (0, 0, height, width), hostile.bitmap(1, width, height), (0, 0, height, width))),
        *[hostile_spice.Send(DisplayMsg.DRAW_COPY, hostile.draw_copy(
            (0, 0, 8, 8), hostile.bitmap(2 + n, 8, 8), (0, 0, 8, 8))) for n in range(30)],
        hostile_spice.Send(DisplayMsg.MARK)]

    async def scenario() -> tuple[int | None, int]:
        async with hostile_spice.HostileSpiceServer(steps) as server:
            vm = await hostile.open_vm(server)
            try:
                await vm.display(0, hostile.TIMEOUT)
                protocol = vm.channel(ChannelType.DISPLAY).protocol
                assert protocol is not None
                return vm.displays.progress.drawn_serial(0), protocol.last_message_serial
            finally:
                await vm.close()

    drawn, received = hostile.run(scenario)
    assert received == 35  # SET_ACK, the 33 drawing messages and the MARK
    assert drawn == received
    assert "counted message" not in caplog.text
