"""Hostile display data from a small Spice server (tests/hostile_spice.py) on loopback.

Each scenario opens a SpiceVmConnection with Main, Inputs and Display on the server, which
links honestly, creates a small primary surface, draws one valid image and then lies. The
display channel must end with a RemoteProtocolError naming what was wrong, while Main still
answers pings and Inputs still delivers a key press; memory stays bounded.
"""

from __future__ import annotations

import asyncio
import re
import struct
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TypeVar

import pytest

from atp_notebook.config import Secret
from atp_notebook.errors import RemoteProtocolError, SpiceAuthError
from atp_notebook.spice.aio.channel import ChannelStatus, SpiceChannel
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto.constants import ChannelType, DisplayMsg, InputsMsgc, SurfaceFlags
from atp_notebook.spice.proto.display import (
    DISPLAY_MAX_MESSAGE_SIZE,
    SURFACE_CREATE,
    DisplayOptions,
)
from atp_notebook.spice.proto.framing import MINI_HEADER
from atp_notebook.spice.vm import SpiceVmConnection
from tests.hostile_spice import HostileSpiceServer, Raw, Send, Step
from tests.unit.display_messages import Body, image_bytes

T = TypeVar("T")
Quad = tuple[int, int, int, int]  # top, left, bottom, right (spice.proto Rect)
TIMEOUT = 10.0  # every wait in these tests; the failures come in well under a second
WIDTH, HEIGHT = 64, 48  # the primary surface every scenario starts with
FMT_32_XRGB = 32
BITMAP, BITMAP_32BIT, BITMAP_TOP_DOWN = 0, 8, 4
OP_PUT = 1 << 3
A_SCANCODE = 0x1E


def surface_create(surface_id: int, width: int, height: int, primary: bool = False) -> bytes:
    flags = SurfaceFlags.PRIMARY if primary else 0
    return SURFACE_CREATE.pack(surface_id, width, height, FMT_32_XRGB, flags)


def bitmap(image_id: int, width: int, height: int, color: int = 0x00336699) -> bytes:
    """A top-down 32-bit BITMAP image without a palette, one colour."""
    head = struct.pack("<BBIIII", BITMAP_32BIT, BITMAP_TOP_DOWN, width, height, 4 * width, 0)
    return image_bytes(image_id, BITMAP, width, height,
                       head + struct.pack("<I", color) * (width * height))


def draw_copy(box: Quad, image: bytes | None, src: Quad, surface_id: int = 0) -> bytes:
    return (Body().base(surface_id, box).ptr(image).rect(*src).u16(OP_PUT).u8(0).mask()
            .finish())


PRELUDE: tuple[Step, ...] = (
    Send(DisplayMsg.SURFACE_CREATE, surface_create(0, WIDTH, HEIGHT, primary=True)),
    Send(DisplayMsg.DRAW_COPY, draw_copy((0, 0, 8, 8), bitmap(1, 8, 8), (0, 0, 8, 8))),
)


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    error: str  # a regex the RemoteProtocolError's message must match
    options: DisplayOptions | None = None  # None: the default options
    memory_bound: int | None = None  # tracemalloc peak during the scenario, bytes


def truncated_draw_copy() -> bytes:
    """A DRAW_COPY whose image pointer lands past the end of its body."""
    body = bytearray(draw_copy((0, 0, 8, 8), bitmap(2, 8, 8), (0, 0, 8, 8)))
    struct.pack_into("<I", body, 21, len(body) + 100)  # the Image* after DisplayBase
    return bytes(body)


SCENARIOS = [
    Scenario("a message larger than the display channel's maximum",
             (Raw(MINI_HEADER.pack(DisplayMsg.DRAW_COPY, DISPLAY_MAX_MESSAGE_SIZE + 1)),),
             rf"announces {DISPLAY_MAX_MESSAGE_SIZE + 1} bytes, more than the limit",
             memory_bound=16 << 20),
    Scenario("a DRAW_COPY whose image pointer runs past its body",
             (Send(DisplayMsg.DRAW_COPY, truncated_draw_copy()),),
             r"DRAW_COPY.*(past|beyond|outside|truncat)"),
    Scenario("a surface of zero size",
             (Send(DisplayMsg.SURFACE_CREATE, surface_create(1, 0, 10)),),
             r"SURFACE_CREATE: impossible size 0x10"),
]


# --- the harness ---------------------------------------------------------------------------


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 6 * TIMEOUT))


async def open_vm(server: HostileSpiceServer,
                  options: DisplayOptions | None = None) -> SpiceVmConnection:
    """Main and Inputs open (Inputs from the autostart list), on ``server``."""
    vm = SpiceVmConnection("hostile", server.endpoint, autostart=(ChannelType.INPUTS,),
                           display=options)
    await vm.connect(timeout=TIMEOUT)
    return vm


async def main_and_inputs_live(vm: SpiceVmConnection, server: HostileSpiceServer) -> None:
    """Main answers the server's pings; a key pressed now reaches the server."""
    assert vm.channel(ChannelType.MAIN).status is ChannelStatus.OPEN
    assert len(await server.ping(ChannelType.MAIN, count=3, timeout=TIMEOUT)) == 3
    before = len(server.keys())
    inputs = vm.channel(ChannelType.INPUTS)
    assert inputs.protocol is not None
    inputs.protocol.key_press_release(A_SCANCODE)  # type: ignore[attr-defined]
    await inputs.send()
    await server.wait_until(lambda: len(server.keys()) > before, TIMEOUT, "key press")
    key = server.keys()[-1]
    assert (key.msg_type, key.body) == (InputsMsgc.KEY_SCANCODE, bytes([0x1E, 0x9E]))


async def display_failure(server: HostileSpiceServer, vm: SpiceVmConnection) -> SpiceChannel:
    """Open the display channel and wait until the client ends it."""
    display = await vm.open_channel(ChannelType.DISPLAY, timeout=TIMEOUT)
    await asyncio.wait_for(display.wait_closed(), TIMEOUT)
    await asyncio.wait_for(server.display_closed.wait(), TIMEOUT)  # the socket is gone too
    return display


# --- the tests -------------------------------------------------------------------------------


def test_a_quiet_display_leaves_main_and_inputs_working() -> None:
    """The server itself: an honest link on all three channels, DISPLAY_INIT as the
    options say, PINGs answered on Main, keys delivered on Inputs, the display open."""
    options = DisplayOptions(glz_window=1 << 20, glz_dictionary_id=3, pixmap_cache_size=4096)

    async def scenario() -> None:
        async with HostileSpiceServer(PRELUDE) as server:
            vm = await open_vm(server, options)
            try:
                display = await vm.open_channel(ChannelType.DISPLAY, timeout=TIMEOUT)
                await asyncio.wait_for(server.scenario_done.wait(), TIMEOUT)
                await main_and_inputs_live(vm, server)
                assert display.status is ChannelStatus.OPEN
                init = server.display_init
                assert init is not None
                assert (init.pixmap_cache_size, init.glz_dictionary_id, init.glz_window) == (
                    4096, 3, 1 << 20)
                assert [link.mini_header for link in server.links] == [True] * 3
            finally:
                await vm.close()
            await asyncio.wait_for(server.display_closed.wait(), TIMEOUT)
            assert not server.refused

    run(scenario)


def test_the_server_checks_the_ticket() -> None:
    async def scenario() -> None:
        async with HostileSpiceServer(password="right") as server:
            vm = SpiceVmConnection("hostile", SpiceEndpoint("127.0.0.1", port=server.port,
                                                            password=Secret("wrong")))
            with pytest.raises(SpiceAuthError, match="refused the ticket"):
                await vm.connect(timeout=TIMEOUT)
            assert server.refused == ["wrong ticket"]
            good = SpiceVmConnection("hostile", server.endpoint)
            await good.connect(timeout=TIMEOUT)
            await good.close()

    run(scenario)


@pytest.mark.parametrize("case", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_hostile_display_data_ends_only_the_display_channel(case: Scenario) -> None:
    async def scenario() -> tuple[BaseException | None, int]:
        async with HostileSpiceServer(PRELUDE + case.steps) as server:
            vm = await open_vm(server, case.options)
            try:
                tracemalloc.start()
                try:
                    display = await display_failure(server, vm)
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                await main_and_inputs_live(vm, server)
                assert display.status is ChannelStatus.FAILED
                return display.error, peak
            finally:
                await vm.close()

    error, peak = run(scenario)
    assert isinstance(error, RemoteProtocolError), f"{case.name}: {error!r}"
    assert re.search(case.error, str(error)), f"{case.name}: {error}"
    if case.memory_bound is not None:
        assert peak < case.memory_bound, f"{case.name}: peak {peak / 2**20:.1f} MiB"
