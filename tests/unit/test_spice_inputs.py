"""The inputs channel: scancode encoding, key and mouse messages, motion flow control."""

from __future__ import annotations

import asyncio
import struct
from pathlib import Path
from typing import cast

import pytest

from atp_notebook.errors import LocalProtocolError, RemoteProtocolError
from atp_notebook.spice.aio.channel import SpiceChannel
from atp_notebook.spice.inputs import INTERRUPT_SETTLE_S, SpiceKeyboard
from atp_notebook.spice.proto.common import Ping
from atp_notebook.spice.proto.constants import (
    ChannelType,
    InputsCap,
    KeyModifier,
    MouseButton,
    MouseButtonMask,
)
from atp_notebook.spice.proto.framing import MessageReader, RawMessage
from atp_notebook.spice.proto.inputs import (
    InputsInit,
    InputsProtocol,
    KeyModifiersChanged,
    MouseMotionAck,
    key_bytes,
    key_code,
)

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "spice"
MINI = struct.Struct("<HI")
ACK = MINI.pack(111, 0)  # MOUSE_MOTION_ACK


def sent(inputs: InputsProtocol) -> list[RawMessage]:
    reader = MessageReader()
    reader.feed(inputs.data_to_send())
    return reader.read_messages()


def motion(dx: int, dy: int, buttons: int = 0) -> RawMessage:
    return RawMessage(111, struct.pack("<iiH", dx, dy, buttons))


def position(x: int, y: int, buttons: int = 0, display: int = 0) -> RawMessage:
    return RawMessage(112, struct.pack("<IIHB", x, y, buttons, display))


def inputs(scancode_cap: bool = True) -> InputsProtocol:
    caps = {InputsCap.KEY_SCANCODE} if scancode_cap else set()
    return InputsProtocol(ChannelType.INPUTS, 0, channel_caps=caps)


def test_lab_inputs_stream() -> None:
    chan = inputs()
    events = chan.receive_data((FIXTURES / "inputs-messages.bin").read_bytes())
    assert events[0] == InputsInit(KeyModifier(0))
    assert all(isinstance(e, Ping) for e in events[1:]) and len(events) == 3
    assert chan.modifiers == KeyModifier(0)


@pytest.mark.parametrize(("scancode", "release", "code", "raw"), [
    (0x1E, False, 0x1E, "1e"),  # a
    (0x1E, True, 0x9E, "9e"),
    (0x1C, False, 0x1C, "1c"),  # Enter
    (0x11C, False, 0x1CE0, "e01c"),  # keypad Enter: E0 1C
    (0x148, False, 0x48E0, "e048"),  # Up
    (0x148, True, 0xC8E0, "e0c8"),
    (0x11D, True, 0x9DE0, "e09d"),  # Right Ctrl release
    (0x15B, False, 0x5BE0, "e05b"),  # Left "Windows"
])
def test_scancode_encoding(scancode: int, release: bool, code: int, raw: str) -> None:
    """spice-gtk spice_make_scancode; the server pushes the u32's LE bytes until a zero."""
    assert key_code(scancode, release=release) == code
    assert key_bytes(scancode, release=release) == bytes.fromhex(raw)
    assert code.to_bytes(4, "little").rstrip(b"\0") == bytes.fromhex(raw)


@pytest.mark.parametrize("scancode", [0, 0x80, 0x9E, 0x100, 0x180, 0x200, -1])
def test_bad_scancodes_are_local_errors(scancode: int) -> None:
    with pytest.raises(LocalProtocolError, match="scancode"):
        key_code(scancode)


def test_key_messages_golden() -> None:
    chan = inputs()
    chan.key_down(0x1E)
    chan.key_up(0x148)
    chan.key_press_release(0x1E)
    chan.key_press_release(0x148)
    chan.set_modifiers(KeyModifier.NUM_LOCK | KeyModifier.CAPS_LOCK)
    chan.send_scancodes(bytes.fromhex("e11d45e19dc5"))  # Pause
    assert chan.data_to_send() == bytes.fromhex(
        "6500 04000000 1e000000"  # KEY_DOWN a
        "6600 04000000 e0c80000"  # KEY_UP Up
        "6800 02000000 1e9e"  # KEY_SCANCODE a down+up
        "6800 04000000 e048e0c8"  # KEY_SCANCODE Up down+up
        "6700 02000000 0600"  # KEY_MODIFIERS num+caps
        "6800 06000000 e11d45e19dc5".replace(" ", ""))


def test_without_the_scancode_cap_press_release_is_two_messages() -> None:
    chan = inputs(scancode_cap=False)
    chan.key_press_release(0x1E)
    assert sent(chan) == [RawMessage(101, struct.pack("<I", 0x1E)),
                          RawMessage(102, struct.pack("<I", 0x9E))]
    with pytest.raises(LocalProtocolError, match="KEY_SCANCODE"):
        chan.send_scancodes(b"\x1e")
    with pytest.raises(LocalProtocolError):
        inputs().send_scancodes(b"")


def test_motion_window_coalesces_and_the_ack_releases() -> None:
    chan = inputs()
    assert [chan.motion(1, 2) for _ in range(8)] == [True] * 8  # two bunches in flight
    assert sent(chan) == [motion(1, 2)] * 8
    assert [chan.motion(3, -1) for _ in range(4)] == [False] * 4
    assert sent(chan) == [] and chan.motion_pending and chan.motions_coalesced == 4
    assert chan.receive_data(ACK) == [MouseMotionAck()]  # 8 - 4 = 4 unacked: room again
    assert sent(chan) == [motion(12, -4)]  # the four, summed
    assert chan.unacked_motions == 5 and not chan.motion_pending
    chan.receive_data(ACK * 3)
    assert chan.unacked_motions == 0 and chan.motions_sent == 9


def test_positions_keep_the_latest() -> None:
    chan = inputs()
    for i in range(8):
        chan.position(i, i)
    sent(chan)
    assert not chan.position(100, 100) and not chan.position(200, 300, 1)
    chan.receive_data(ACK)
    assert sent(chan) == [position(200, 300, 0, 1)]


def test_a_click_flushes_pending_motion_first() -> None:
    chan = inputs()
    for _ in range(8):
        chan.motion(1, 0)
    sent(chan)
    chan.motion(5, 5)
    chan.button_press(MouseButton.LEFT)
    chan.button_release(MouseButton.LEFT)
    assert sent(chan) == [motion(5, 5), RawMessage(113, bytes.fromhex("010100")),
                          RawMessage(114, bytes.fromhex("010000"))]
    assert chan.unacked_motions == 9  # the server counts it, so do we


def test_buttons_state_rides_along() -> None:
    chan = inputs()
    chan.button_press(MouseButton.RIGHT)
    chan.position(10, 20)
    chan.button_press(MouseButton.LEFT)
    chan.button_release(MouseButton.RIGHT)
    assert sent(chan) == [
        RawMessage(113, bytes([3]) + struct.pack("<H", MouseButtonMask.RIGHT)),
        position(10, 20, MouseButtonMask.RIGHT),
        RawMessage(113, bytes([1]) + struct.pack("<H", 5)),
        RawMessage(114, bytes([3]) + struct.pack("<H", MouseButtonMask.LEFT)),
    ]


def test_scroll_is_press_and_release_without_state() -> None:
    chan = inputs()
    chan.scroll(-2)
    assert sent(chan) == [RawMessage(113, b"\x05\0\0"), RawMessage(114, b"\x05\0\0")] * 2


def test_position_golden_and_range() -> None:
    chan = inputs()
    chan.position(100, 200, 1)
    assert chan.data_to_send() == bytes.fromhex("7000 0b000000 64000000 c8000000 0000 01"
                                                .replace(" ", ""))
    with pytest.raises(LocalProtocolError):
        chan.position(-1, 0)
    assert chan.motion(0, 0) and chan.data_to_send() == b""


def test_server_modifier_messages() -> None:
    chan = inputs()
    assert chan.receive_data(MINI.pack(102, 2) + b"\x05\x00") == [
        KeyModifiersChanged(KeyModifier.SCROLL_LOCK | KeyModifier.CAPS_LOCK)]
    assert chan.modifiers == KeyModifier.SCROLL_LOCK | KeyModifier.CAPS_LOCK
    with pytest.raises(RemoteProtocolError, match="INPUTS_INIT"):
        chan.receive_data(MINI.pack(101, 1) + b"\x01")


def test_huge_motion_is_clamped_to_int32() -> None:
    chan = inputs()
    chan.unacked_motions = 8
    chan.motion(2**31 - 1, -(2**31))
    chan.motion(10, -10)
    chan.receive_data(ACK)
    assert sent(chan) == [motion(2**31 - 1, -(2**31))]


# --- SpiceKeyboard: typing after an interrupting combo waits for the guest to settle -------


class FakeInputsChannel:
    """What SpiceKeyboard uses of an open Inputs channel: the protocol, ensure_open, send.
    ``send`` records each flush with the fake clock's time."""

    def __init__(self, clock: FakeClock) -> None:
        self.protocol = inputs()
        self.clock = clock
        self.flushes: list[tuple[float, bytes]] = []

    def ensure_open(self) -> None:
        pass

    async def send(self) -> None:
        data = self.protocol.data_to_send()
        if data:
            self.flushes.append((self.clock.now, data))


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def keyboard(channel: FakeInputsChannel, layout: str = "us") -> SpiceKeyboard:
    # rate=None: no pacing sleeps, so every recorded sleep is a settle wait
    return SpiceKeyboard(cast(SpiceChannel, channel), layout=layout, rate=None,
                         clock=channel.clock, sleep=channel.clock.sleep)


def keys_typed_at(channel: FakeInputsChannel) -> list[float]:
    """When each type() flushed its keys (the press's flush has a Ctrl make code, 0x1d)."""
    return [t for t, data in channel.flushes if b"\x1d" not in data]


@pytest.mark.parametrize(("layout_name", "combo"), [
    ("us", "ctrl-c"), ("us", "ctrl+z"), ("us", "rctrl-c"), ("us", "ctrl-alt-c"),
    ("de", "ctrl-z"),  # the de key at US Y
])
def test_typing_right_after_an_interrupt_waits_the_settle_time(
        layout_name: str, combo: str) -> None:
    clock = FakeClock()
    channel = FakeInputsChannel(clock)
    # two keyboards on one channel, as the facade makes one per call
    asyncio.run(keyboard(channel, layout_name).press(combo))
    clock.now += 0.1
    asyncio.run(keyboard(channel, layout_name).type("echo r1\n"))
    assert clock.sleeps == [pytest.approx(INTERRUPT_SETTLE_S - 0.1)]
    assert keys_typed_at(channel) == [pytest.approx(100.0 + INTERRUPT_SETTLE_S)]
    # the wait is for the first type() after the interrupt only
    asyncio.run(keyboard(channel, layout_name).type("echo r2\n"))
    assert len(clock.sleeps) == 1


@pytest.mark.parametrize(("layout_name", "combo"), [
    ("us", "shift"), ("us", "ctrl-d"), ("us", "alt-c"), ("us", "c"), ("us", "ctrl-alt-delete"),
    ("de", "ctrl-y"),  # the de key at US Z: not Z on a German keyboard
])
def test_other_combos_do_not_delay_typing(layout_name: str, combo: str) -> None:
    clock = FakeClock()
    channel = FakeInputsChannel(clock)
    asyncio.run(keyboard(channel, layout_name).press(combo))
    asyncio.run(keyboard(channel, layout_name).type("ls\n"))
    assert clock.sleeps == []


def test_no_wait_once_the_settle_time_has_passed() -> None:
    clock = FakeClock()
    channel = FakeInputsChannel(clock)
    asyncio.run(keyboard(channel).press("ctrl-c"))
    clock.now += INTERRUPT_SETTLE_S + 0.01
    asyncio.run(keyboard(channel).type("ls\n"))
    assert clock.sleeps == []


def test_the_wait_is_per_channel() -> None:
    clock = FakeClock()
    interrupted, other = FakeInputsChannel(clock), FakeInputsChannel(clock)
    asyncio.run(keyboard(interrupted).press("ctrl-c"))
    asyncio.run(keyboard(other).type("ls\n"))
    assert clock.sleeps == []
    asyncio.run(keyboard(interrupted).type("ls\n"))
    assert clock.sleeps == [pytest.approx(INTERRUPT_SETTLE_S)]


# --- SpiceKeyboard: no byte a Linux guest reads as its keyboard resetting -----------------


def linux_keyboard_resets(scancodes: bytes) -> int:
    """How often a Linux guest's atkbd (QEMU's PS/2 keyboard, translated set 2) takes these
    set-1 bytes for the keyboard's self-test result 0xAA (BAT): 0xAA is left shift's release
    only while left shift is down (atkbd.c, atkbd_need_xlate and its xl_bit). On a BAT it
    re-probes the keyboard, and the keys that arrive meanwhile are lost."""
    shift_down, resets, previous = False, 0, None
    for byte in scancodes:
        if previous != 0xE0:  # E0 2A / E0 AA: a fake shift, which atkbd does not track
            if byte == 0x2A:
                shift_down = True
            elif byte == 0xAA:
                resets += not shift_down
                shift_down = False
        previous = byte
    return resets


@pytest.mark.parametrize("before", [None, "shift", "ctrl-c"])
def test_typing_sends_nothing_a_linux_guest_reads_as_a_keyboard_reset(before: str | None,
                                                                      ) -> None:
    # the blind release of every modifier at the start of type() began with a lone 0xAA:
    # the lab's guests re-probed their keyboard there and lost the first key ("cho typed")
    channel = FakeInputsChannel(FakeClock())
    if before is not None:
        asyncio.run(keyboard(channel).press(before))
    asyncio.run(keyboard(channel).type("echo Typed >/tmp/x\n"))
    asyncio.run(keyboard(channel).type("ls\n"))
    reader = MessageReader()
    for _, data in channel.flushes:
        reader.feed(data)
    stream = b"".join(m.body for m in reader.read_messages() if m.msg_type == 104)
    assert stream.count(0x12) == 2  # e pressed and released: the text is in there
    assert linux_keyboard_resets(stream) == 0
