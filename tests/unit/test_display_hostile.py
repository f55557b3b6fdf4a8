"""Hostile display data from a small Spice server (tests/hostile_spice.py) on loopback.

Each scenario opens a SpiceVmConnection with Main, Inputs and Display on the server, which
links honestly, creates a small primary surface, draws one valid image, waits until the
test has seen it drawn, and then lies. The display channel must end with a
RemoteProtocolError naming what was wrong (and a display wait under way, or made later on
that display, raise ChannelClosed naming it), while Main still answers pings and Inputs
still delivers a key press; Python's allocations from the lie to the end stay under the
scenario's bound (tracemalloc: numpy's arrays count); the next display call opens the
channel again. Also here: the server's own honesty (a quiet display, the ticket), ACKs
that follow the draws through a small window, and the same story through the user's API
on a Spice-only VM.
"""

from __future__ import annotations

import asyncio
import random
import re
import struct
import tracemalloc
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import pytest

from atp_notebook.config import Secret
from atp_notebook.errors import ChannelClosed, RemoteProtocolError, SpiceAuthError
from atp_notebook.session import Vm, connect
from atp_notebook.spice import vm_displays
from atp_notebook.spice.aio.channel import ChannelStatus
from atp_notebook.spice.display.live import LiveDisplay
from atp_notebook.spice.display.surfaces import Surfaces
from atp_notebook.spice.endpoint import SpiceEndpoint
from atp_notebook.spice.proto.constants import (
    ChannelType,
    DisplayMsg,
    ImageType,
    InputsMsgc,
    SurfaceFlags,
    VideoCodecType,
)
from atp_notebook.spice.proto.display import (
    DISPLAY_MAX_MESSAGE_SIZE,
    SURFACE_CREATE,
    DisplayOptions,
)
from atp_notebook.spice.proto.display_stream import STREAM_CREATE_HEAD, StreamFlags
from atp_notebook.spice.proto.framing import MINI_HEADER
from atp_notebook.spice.proto.inputs import InputsProtocol
from atp_notebook.spice.vm import SpiceVmConnection
from tests.hostile_spice import (
    Close,
    Gate,
    HostileSpiceServer,
    Raw,
    Send,
    ServerThread,
    Step,
    Trickle,
)
from tests.settling import settled
from tests.unit.codec_streams import RGB32 as LZ_RGB32
from tests.unit.codec_streams import lz_case
from tests.unit.display_messages import Body, image_bytes
from tests.unit.glz_streams import RGB32 as GLZ_RGB32
from tests.unit.glz_streams import GlzTestEncoder
from tests.unit.quic_streams import RGB32 as QUIC_RGB32
from tests.unit.quic_streams import quic_case

T = TypeVar("T")
Quad = tuple[int, int, int, int]  # top, left, bottom, right (spice.proto Rect)
TIMEOUT = 10.0  # every wait in these tests; the failures come in well under a second
WIDTH, HEIGHT = 64, 48  # the primary surface every scenario starts with
FMT_32_XRGB = 32
BITMAP, BITMAP_32BIT, BITMAP_TOP_DOWN = 0, 8, 4
CACHE_ME = 1  # SpiceImage flags
OP_PUT = 1 << 3
A_SCANCODE = 0x1E


def surface_create(surface_id: int, width: int, height: int, primary: bool = False) -> bytes:
    flags = SurfaceFlags.PRIMARY if primary else 0
    return SURFACE_CREATE.pack(surface_id, width, height, FMT_32_XRGB, flags)


def bitmap(image_id: int, width: int, height: int, color: int = 0x00336699,
           flags: int = 0) -> bytes:
    """A top-down 32-bit BITMAP image without a palette, one colour."""
    head = struct.pack("<BBIIII", BITMAP_32BIT, BITMAP_TOP_DOWN, width, height, 4 * width, 0)
    return image_bytes(image_id, BITMAP, width, height,
                       head + struct.pack("<I", color) * (width * height), flags)


def draw_copy(box: Quad, image: bytes | None, src: Quad, surface_id: int = 0) -> bytes:
    return (Body().base(surface_id, box).ptr(image).rect(*src).u16(OP_PUT).u8(0).mask()
            .finish())


# what spice-server sends after DISPLAY_INIT (research/display.md §1.9), on a small screen
PRELUDE: tuple[Step, ...] = (
    Send(DisplayMsg.INVAL_ALL_PALETTES),
    Send(DisplayMsg.SURFACE_CREATE, surface_create(0, WIDTH, HEIGHT, primary=True)),
    Send(DisplayMsg.DRAW_COPY, draw_copy((0, 0, 8, 8), bitmap(1, 8, 8), (0, 0, 8, 8))),
    Send(DisplayMsg.MARK),
)
PRELUDE_RGB: tuple[int, ...] = (0x33, 0x66, 0x99)  # the prelude's 8x8 square at 0,0


@dataclass(frozen=True)
class Scenario:
    name: str
    steps: tuple[Step, ...]
    error: str  # a regex the RemoteProtocolError's message must match
    options: DisplayOptions | None = None  # None: the default options
    # what Python (numpy included) may allocate from the lie to the channel's end
    memory_bound: int = 16 << 20


def truncated_draw_copy() -> bytes:
    """A DRAW_COPY whose image pointer lands past the end of its body."""
    body = bytearray(draw_copy((0, 0, 8, 8), bitmap(2, 8, 8), (0, 0, 8, 8)))
    struct.pack_into("<I", body, 21, len(body) + 100)  # the Image* after DisplayBase
    return bytes(body)


def sized_stream(kind: int, image_id: int, width: int, height: int, stream: bytes) -> bytes:
    """An image whose union is u32 data_size + data (QUIC, LZ_RGB, GLZ_RGB)."""
    return image_bytes(image_id, kind, width, height, struct.pack("<I", len(stream)) + stream)


def lz_stream(width: int, height: int) -> bytes:
    return lz_case(LZ_RGB32, width, height, True, random.Random(13)).stream


def quic_stream(width: int, height: int) -> bytes:
    return quic_case(QUIC_RGB32, width, height, "photo", random.Random(13)).stream


def glz_referencing_a_missing_image() -> bytes:
    """A GLZ image (id 1 of the dictionary) that copies from image 0, which is never sent."""
    rng = random.Random(13)
    encoder = GlzTestEncoder(1 << 16)
    pixels = [rng.getrandbits(24) for _ in range(16 * 16)]
    encoder.encode(GLZ_RGB32, 16, 16, pixels, rng, literal_rate=0.0)  # image 0: kept back
    second = encoder.encode(GLZ_RGB32, 16, 16, pixels, rng, literal_rate=0.0)
    assert second.refs, "image 1 must copy from image 0"
    return sized_stream(ImageType.GLZ_RGB, 0x6172, 16, 16, second.stream)


def copy_of(image: bytes, side: int = 8) -> Send:
    """A DRAW_COPY of a ``side`` square ``image`` to the top left corner."""
    return Send(DisplayMsg.DRAW_COPY,
                draw_copy((0, 0, side, side), image, (0, 0, side, side)))


def stream_create(stream_id: int, dest: Quad, size: tuple[int, int] = (8, 8)) -> Send:
    """STREAM_CREATE of an MJPEG stream on the primary surface, frames top-down."""
    head = STREAM_CREATE_HEAD.pack(0, stream_id, StreamFlags.TOP_DOWN, VideoCodecType.MJPEG,
                                   0, *size, *size)
    return Send(DisplayMsg.STREAM_CREATE, Body().raw(head).rect(*dest).clip([]).finish())


def stream_data(stream_id: int, frame: bytes) -> Send:
    return Send(DisplayMsg.STREAM_DATA, struct.pack("<III", stream_id, 0, len(frame)) + frame)


def stream_data_sized(stream_id: int, size: tuple[int, int], dest: Quad, frame: bytes) -> Send:
    body = Body().pack("4I", stream_id, 0, *size).rect(*dest).u32(len(frame)).raw(frame)
    return Send(DisplayMsg.STREAM_DATA_SIZED, body.finish())


NOT_A_JPEG = b"\xff\xd8\xff\xe0" + bytes(range(256)) * 4
STREAM_OPTIONS = DisplayOptions.lossy()  # MJPEG streams announced

SLOW_HEADER = MINI_HEADER.pack(DisplayMsg.DRAW_COPY, 100_000)
GLZ_OPTIONS = DisplayOptions.server_choice(glz_window=1 << 16)
MESSAGE_TIMEOUT = 1.0  # the slowloris case's per-message deadline (the default is 30 s)
SURFACES_CAP = Surfaces().max_bytes  # what one display's surfaces may hold (512 MiB)
GLZ_WAIT = 0.5  # how long a GLZ image waits for one never sent (the default is 10 s)

SCENARIOS = [
    Scenario("a message larger than the display channel's maximum",
             (Raw(MINI_HEADER.pack(DisplayMsg.DRAW_COPY, DISPLAY_MAX_MESSAGE_SIZE + 1)),),
             rf"announces {DISPLAY_MAX_MESSAGE_SIZE + 1} bytes, more than the limit"),
    Scenario("a DRAW_COPY whose image pointer runs past its body",
             (Send(DisplayMsg.DRAW_COPY, truncated_draw_copy()),),
             r"DRAW_COPY: source image points at \d+, past the body"),
    Scenario("a surface of zero size",
             (Send(DisplayMsg.SURFACE_CREATE, surface_create(1, 0, 10)),),
             r"SURFACE_CREATE: impossible size 0x10"),
    Scenario("a draw box past the surface",
             (Send(DisplayMsg.DRAW_COPY,
                   draw_copy((40, 56, 56, 72), bitmap(3, 16, 16), (0, 0, 16, 16))),),
             r"DRAW_COPY: box \(56, 40, 72, 56\) is not inside surface 0 \(64x48\)"),
    Scenario("a source area past its image",
             (Send(DisplayMsg.DRAW_COPY,
                   draw_copy((0, 0, 16, 16), bitmap(4, 8, 8), (0, 0, 16, 16))),),
             r"DRAW_COPY: .*source area \(0, 0, 16, 16\) is not inside the 8x8 source"),
    Scenario("FROM_CACHE of an image never cached",
             (copy_of(image_bytes(0xCAC4E, ImageType.FROM_CACHE, 8, 8, b"")),),
             r"DRAW_COPY: .*FROM_CACHE of 0xcac4e, which is not cached"),
    Scenario("a SURFACE image naming a missing surface",
             (copy_of(image_bytes(5, ImageType.SURFACE, 8, 8, struct.pack("<I", 7))),),
             r"DRAW_COPY: a SURFACE image names surface 7, which does not exist"),
    Scenario("a draw on a missing surface",
             (Send(DisplayMsg.DRAW_COPY,
                   draw_copy((0, 0, 8, 8), bitmap(6, 8, 8), (0, 0, 8, 8), surface_id=9)),),
             r"DRAW_COPY: .*unknown surface 9"),
    Scenario("a GLZ image copying from an image never sent",
             (Send(DisplayMsg.DRAW_COPY, draw_copy(
                 (0, 0, 16, 16), glz_referencing_a_missing_image(), (0, 0, 16, 16))),),
             r"DRAW_COPY: glz .*reference to image 0, which did not arrive within 0.5 s",
             options=GLZ_OPTIONS),
    Scenario("a truncated LZ payload",
             (copy_of(sized_stream(ImageType.LZ_RGB, 8, 16, 16, lz_stream(16, 16)[:40]), 16),),
             r"DRAW_COPY: lz image data is bad at byte \d+: .*past the end of the stream"),
    Scenario("a truncated QUIC payload",
             (copy_of(sized_stream(ImageType.QUIC, 9, 16, 16, quic_stream(16, 16)[:60]), 16),),
             r"DRAW_COPY: quic image data is bad at byte \d+: the stream ends before the image"),
    Scenario("an LZ image whose header says 8x8 and its descriptor 16x16",
             (copy_of(sized_stream(ImageType.LZ_RGB, 10, 16, 16, lz_stream(8, 8)), 16),),
             r"DRAW_COPY: lz_rgb .*holds a 8x8 image, the descriptor says 16x16"),
    Scenario("SURFACE_CREATE of 16384x16384, again and again",
             tuple(Send(DisplayMsg.SURFACE_CREATE, surface_create(i, 16384, 16384))
                   for i in range(1, 21)),
             r"SURFACE_CREATE: .*surface 1 \(16384x16384\) would take surfaces past \d+ bytes"),
    Scenario("off-screen 4096x4096 surfaces until the surfaces' byte cap",
             tuple(Send(DisplayMsg.SURFACE_CREATE, surface_create(i, 4096, 4096))
                   for i in range(1, 10)),
             r"SURFACE_CREATE: .*surface 8 \(4096x4096\) would take surfaces past \d+ bytes",
             memory_bound=SURFACES_CAP + (16 << 20)),
    Scenario("CACHE_ME past the pixmap cache size we announced",
             tuple(copy_of(bitmap(0x100 + i, 8, 8, flags=CACHE_ME)) for i in range(2)),
             r"DRAW_COPY: .*caching image 0x101 \(64 pixels\) would pass the pixmap cache "
             r"size we announced \(64 pixels, 64 held\)",
             options=DisplayOptions.lossless(pixmap_cache_size=64)),
    Scenario("STREAM_DATA for a stream never created",
             (stream_data(5, NOT_A_JPEG),),
             r"STREAM_DATA: unknown stream 5", options=STREAM_OPTIONS),
    Scenario("a stream placed past the surface",
             (stream_create(1, (40, 56, 56, 72)),),
             r"STREAM_CREATE: destination .* is not inside surface 0",
             options=STREAM_OPTIONS),
    Scenario("a stream frame that is not a JPEG",
             (stream_create(1, (0, 0, 8, 8)), stream_data(1, NOT_A_JPEG)),
             r"STREAM_DATA: stream 1 frame", options=STREAM_OPTIONS),
    Scenario("a sized stream frame of 16384x16384 pixels",
             (stream_create(1, (0, 0, 8, 8)),
              stream_data_sized(1, (16384, 16384), (0, 0, 8, 8), NOT_A_JPEG)),
             r"STREAM_DATA_SIZED: stream 1's frame", options=STREAM_OPTIONS),
    Scenario("the largest message the channel takes, all but its last byte, then silence",
             (Raw(MINI_HEADER.pack(DisplayMsg.DRAW_COPY, DISPLAY_MAX_MESSAGE_SIZE)),
              Raw(bytes(DISPLAY_MAX_MESSAGE_SIZE - 1))),
             r"sent \d+ bytes of a message and not the rest within 1 s",
             memory_bound=3 * DISPLAY_MAX_MESSAGE_SIZE),
    Scenario("the server closing the channel in the middle of a message",
             (Raw(MINI_HEADER.pack(DisplayMsg.DRAW_COPY, 1000) + bytes(100)), Close()),
             r"closed the connection inside a message \(106 bytes of it received\)"),
    Scenario("a slowloris: 100 KB announced, one byte every 0.2 s",
             (Raw(SLOW_HEADER), Trickle(bytes(100_000), 0.2)),
             r"sent \d+ bytes of a message and not the rest within 1 s"),
]


# --- the harness ---------------------------------------------------------------------------


def run(scenario: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(asyncio.wait_for(scenario(), 6 * TIMEOUT))


async def open_vm(server: HostileSpiceServer,
                  options: DisplayOptions | None = None) -> SpiceVmConnection:
    """Main and Inputs open (Inputs from the autostart list), on ``server``."""
    vm = SpiceVmConnection("hostile", server.endpoint, autostart=(ChannelType.INPUTS,),
                           display=options, message_timeout=MESSAGE_TIMEOUT)
    await vm.connect(timeout=TIMEOUT)
    return vm


async def main_and_inputs_live(vm: SpiceVmConnection, server: HostileSpiceServer) -> None:
    """Main answers the server's pings; a key pressed now reaches the server."""
    assert vm.channel(ChannelType.MAIN).status is ChannelStatus.OPEN
    assert len(await server.ping(ChannelType.MAIN, count=3, timeout=TIMEOUT)) == 3
    before = len(server.key_messages())
    inputs = vm.channel(ChannelType.INPUTS)
    assert isinstance(inputs.protocol, InputsProtocol)
    inputs.protocol.key_press_release(A_SCANCODE)
    await inputs.send()
    await server.wait_until(lambda: len(server.key_messages()) > before, TIMEOUT, "key press")
    key = server.key_messages()[-1]
    assert (key.msg_type, key.body) == (InputsMsgc.KEY_SCANCODE, bytes([0x1E, 0x9E]))


def prelude_drawn(live: LiveDisplay) -> bool:
    """The prelude's 8x8 DRAW_COPY is on the screen (B, G, R of 0x336699)."""
    pixels = live.pixels()
    return pixels.shape == (HEIGHT, WIDTH, 4) and bool(
        (pixels[:8, :8, :3] == PRELUDE_RGB[::-1]).all())


# --- the tests -------------------------------------------------------------------------------


def test_a_quiet_display_leaves_main_and_inputs_working() -> None:
    """The server itself: an honest link on all three channels, DISPLAY_INIT as the
    options say, PINGs answered on Main, keys delivered on Inputs, the prelude drawn."""
    options = DisplayOptions(glz_window=1 << 20, glz_dictionary_id=3, pixmap_cache_size=4096)

    async def scenario() -> None:
        async with HostileSpiceServer(PRELUDE) as server:
            vm = await open_vm(server, options)
            try:
                await drawn_prelude(vm)
                await asyncio.wait_for(server.scenario_done.wait(), TIMEOUT)
                await main_and_inputs_live(vm, server)
                assert vm.channel(ChannelType.DISPLAY).status is ChannelStatus.OPEN
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


def test_the_display_is_handed_out_once_its_first_whole_picture_is_drawn() -> None:
    """A 3 MiB first screen takes several reads: the frame of the new, empty surface came
    first, and vm.display() returned on it with the screen still black (0 of 10 runs drawn
    before it waited for the MARK)."""
    width, height = 1024, 768
    first_screen = (
        Send(DisplayMsg.INVAL_ALL_PALETTES),
        Send(DisplayMsg.SURFACE_CREATE, surface_create(0, width, height, primary=True)),
        Send(DisplayMsg.DRAW_COPY, draw_copy((0, 0, height, width), bitmap(1, width, height),
                                             (0, 0, height, width))),
        Send(DisplayMsg.MARK))

    async def scenario() -> None:
        for _ in range(3):
            async with HostileSpiceServer(first_screen) as server:
                vm = await open_vm(server)
                try:
                    live = await vm.display(0, TIMEOUT)
                    corner = live.pixels()[height - 1, width - 1, :3]
                    assert tuple(corner) == (0x99, 0x66, 0x33), tuple(corner)
                finally:
                    await vm.close()

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


def test_acks_follow_the_draws_and_keep_the_server_sending() -> None:
    """spice-server stops at twice the ACK window unacknowledged; the display acknowledges
    what it has drawn, so 300 draws through a window of 4 all arrive and are drawn."""
    window = 4
    many = Send(DisplayMsg.DRAW_COPY, draw_copy((8, 8, 16, 16), bitmap(20, 8, 8, 0x00FF0000),
                                                (0, 0, 8, 8)), count=300)
    last = Send(DisplayMsg.DRAW_COPY, draw_copy((40, 56, 48, 64), bitmap(21, 8, 8, 0x0000FF00),
                                                (0, 0, 8, 8)))

    async def scenario() -> None:
        async with HostileSpiceServer((*PRELUDE, many, last), ack_window=window) as server:
            vm = await open_vm(server)
            try:
                live = await drawn_prelude(vm)
                await asyncio.wait_for(server.scenario_done.wait(), TIMEOUT)
                link = server.display_links()[0]
                await server.wait_until(lambda: link.acks == link.sent // window, TIMEOUT,
                                        f"ACKs for all {link.sent} messages")
                assert not server.stalled
                assert link.sent == len(PRELUDE) + 300 + 1
                async with asyncio.timeout(TIMEOUT):
                    while not live.pixels()[40:48, 56:64, 1].all():
                        await live.wait_for_change(None, TIMEOUT)
                pixels = live.pixels()
                assert (pixels[8:16, 8:16, :3] == (0, 0, 0xFF)).all()
                assert (pixels[40:48, 56:64, :3] == (0, 0xFF, 0)).all()
                assert vm.channel(ChannelType.DISPLAY).status is ChannelStatus.OPEN
            finally:
                await vm.close()

    run(scenario)


def test_closing_while_a_large_message_streams_in_returns() -> None:
    """The per-message deadline read must give way to close(): on Python 3.11 a wait_for
    whose read completed as close() cancelled it dropped the cancel, the reader went on
    reading a server that had nothing more to say, and close() waited for ever."""
    width, height = 1024, 768  # a 3 MiB BITMAP: many reads, each under the deadline
    large = Send(DisplayMsg.DRAW_COPY, draw_copy((0, 0, 8, 8), bitmap(30, width, height),
                                                 (0, 0, 8, 8)), count=4)

    async def scenario() -> None:
        async with HostileSpiceServer((*PRELUDE, Gate(), large)) as server:
            vm = await open_vm(server)
            await drawn_prelude(vm)
            link = server.display_links()[0]
            server.open_gate()
            await server.wait_until(lambda: link.sent > len(PRELUDE), TIMEOUT,
                                    "the first large message written")
            closing = asyncio.ensure_future(vm.close())
            done, _ = await asyncio.wait([closing], timeout=TIMEOUT)
            assert closing in done, "vm.close() hangs while a large message streams in"

    run(scenario)


@dataclass
class Outcome:
    error: BaseException | None
    peak: int  # tracemalloc peak from the lie to the channel's end, bytes
    waiting: BaseException | None  # what a wait_for_change under way when it failed raised
    later: BaseException | None  # what one on the failed display raised afterwards


async def drawn_prelude(vm: SpiceVmConnection) -> LiveDisplay:
    """The live display once the prelude's DRAW_COPY is on its screen."""
    live = await vm.display(0, TIMEOUT)  # after its first frame
    async with asyncio.timeout(TIMEOUT):
        while not prelude_drawn(live):
            await live.wait_for_change(None, TIMEOUT)
    return live


async def raised(call: Awaitable[object]) -> BaseException | None:
    try:
        await call
    except Exception as exc:
        return exc
    return None


@pytest.mark.parametrize("case", SCENARIOS, ids=[s.name for s in SCENARIOS])
def test_hostile_display_data_ends_only_the_display_channel(
    case: Scenario, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(vm_displays, "GLZ_WAIT_S", GLZ_WAIT)

    async def scenario() -> Outcome:
        steps = (*PRELUDE, Gate(), *case.steps)
        async with HostileSpiceServer(steps, display_after=PRELUDE) as server:
            vm = await open_vm(server, case.options)
            try:
                live = await drawn_prelude(vm)
                display = vm.channel(ChannelType.DISPLAY)
                waiting = asyncio.ensure_future(raised(live.wait_for_change(None, TIMEOUT)))
                tracemalloc.start()
                try:
                    server.open_gate()  # the lie goes out
                    await asyncio.wait_for(display.wait_closed(), TIMEOUT)
                    peak = tracemalloc.get_traced_memory()[1]
                finally:
                    tracemalloc.stop()
                await asyncio.wait_for(server.display_closed.wait(), TIMEOUT)
                assert display.status is ChannelStatus.FAILED
                outcome = Outcome(display.error, peak, await waiting,
                                  await raised(live.wait_for_change(None, TIMEOUT)))
                await main_and_inputs_live(vm, server)
                # the next display call opens the channel again (the server is honest then)
                again = await drawn_prelude(vm)
                assert again is not live
                assert len(server.display_links()) == 2
                return outcome
            finally:
                await vm.close()

    outcome = run(scenario)
    error = outcome.error
    assert isinstance(error, RemoteProtocolError), f"{case.name}: {error!r}"
    assert re.search(case.error, error.message), f"{case.name}: {error.message}"
    for what, call in (("a wait under way", outcome.waiting), ("a later wait", outcome.later)):
        assert isinstance(call, ChannelClosed), f"{case.name}, {what}: {call!r}"
        assert error.message in call.message, f"{case.name}, {what}: {call.message}"
    assert outcome.peak < case.memory_bound, (
        f"{case.name}: peak {outcome.peak / 2**20:.1f} MiB")


def corner(vm: Vm) -> tuple[int, ...]:
    """The top left pixel of a screenshot, (R, G, B)."""
    pixel = vm.screenshot(timeout=TIMEOUT).getpixel((0, 0))
    assert isinstance(pixel, tuple)
    return tuple(int(v) for v in pixel)


def test_a_spice_only_vm_draws_again_after_a_lie_and_still_types(tmp_path: Path) -> None:
    """Through the user's API (connect -> vm): a Spice-only VM's screenshot, a lie that
    ends the display channel, a screenshot that opens it again, and typing meanwhile."""
    steps = (*PRELUDE, Gate(), Send(DisplayMsg.DRAW_COPY, draw_copy(
        (0, 0, 8, 8), image_bytes(0xCAC4E, ImageType.FROM_CACHE, 8, 8, b""), (0, 0, 8, 8))))
    with ServerThread(HostileSpiceServer(steps, display_after=PRELUDE)) as thread:
        server = thread.server
        config = tmp_path / "atp.yaml"
        config.write_text("transport:\n  spice:\n    vms:\n    - vm_id: hostile\n"
                          f"      server_addr: 127.0.0.1\n      port: {server.port}\n")
        session = connect(config)
        try:
            vm = session.vm("hostile")
            assert vm.spice_only
            # screenshot() returns once a first frame is drawn: the surface alone, maybe
            assert vm.screenshot(timeout=TIMEOUT).size == (WIDTH, HEIGHT)
            assert settled(lambda: corner(vm), PRELUDE_RGB) == PRELUDE_RGB
            thread.call(server.open_gate)
            thread.run(asyncio.wait_for(server.display_closed.wait(), TIMEOUT))
            vm.type("a", timeout=TIMEOUT)
            thread.run(server.wait_until(
                lambda: any(k.body[:1] == b"\x1e" for k in server.key_messages()), TIMEOUT,
                "the typed key"))
            # the display channel opens again
            assert settled(lambda: corner(vm), PRELUDE_RGB) == PRELUDE_RGB
            assert len(server.display_links()) == 2
        finally:
            session.close()
