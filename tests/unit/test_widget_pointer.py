"""pointer.py: browser buttons held and released, wheel deltas in notches; keys.py's special
keys; facade.py's PointerPlacer on a real InputsProtocol (the bytes it queues)."""

from __future__ import annotations

import struct

import pytest

from atp_notebook.errors import InvalidArgument
from atp_notebook.notebook.widget.keys import SPECIAL_KEYS, combo_key_events
from atp_notebook.notebook.widget.pointer import MAX_NOTCHES, HeldButtons, WheelNotches
from atp_notebook.spice.facade import HOME_MOTION, PointerPlacer
from atp_notebook.spice.proto.constants import ChannelType, MouseButton, MouseMode
from atp_notebook.spice.proto.framing import MessageReader, RawMessage
from atp_notebook.spice.proto.inputs import InputsProtocol

MOTION, POSITION, PRESS, RELEASE = 111, 112, 113, 114  # SPICE_MSGC_INPUTS_MOUSE_*


@pytest.mark.parametrize(("events", "sent", "held"), [
    ([("down", 0), ("up", 0)], ["left", "left"], ()),
    ([("down", 2), ("down", 0), ("up", 2)], ["right", "left", "right"], ("left",)),
    ([("up", 0)], [None], ()),  # pressed outside the canvas: the guest never saw it go down
    ([("down", 3), ("down", 4), ("up", 3)], [None, None, None], ()),  # back, forward
    ([("down", 1), ("down", 1), ("up", 1), ("up", 1)], ["middle", "middle", "middle", None],
     ()),
])
def test_held_buttons(events: list[tuple[str, int]], sent: list[str | None],
                      held: tuple[str, ...]) -> None:
    buttons = HeldButtons()
    got = [buttons.down(b) if kind == "down" else buttons.up(b) for kind, b in events]
    assert got == sent
    assert buttons.held == held


def test_release_all_lets_go_of_every_held_button_last_pressed_first() -> None:
    buttons = HeldButtons()
    for b in (0, 2, 1):
        buttons.down(b)
    assert buttons.release_all() == ["middle", "right", "left"]
    assert buttons.held == ()
    assert buttons.release_all() == []


@pytest.mark.parametrize(("deltas", "notches"), [
    ([(100, 0)], [-2]),  # Chromium's notch, down: two of ours
    ([(-100, 0)], [2]),  # up
    ([(3, 1)], [-1]),  # Firefox: 3 lines
    ([(-1, 2)], [1]),  # a page
    ([(20, 0), (20, 0), (20, 0)], [0, 0, -1]),  # a touchpad's small deltas add up
    ([(40, 0), (-40, 0), (-40, 0)], [0, 0, 1]),  # turning back forgets the other way's rest
    ([(40, 0), (-60, 0)], [0, 1]),
    ([(1e9, 0)], [-MAX_NOTCHES]),  # a fling is capped
    ([(float("nan"), 0), (float("inf"), 0), (0, 0)], [0, 0, 0]),
    ([(50, 7)], [-1]),  # an unknown mode counts as pixels
])
def test_wheel_notches(deltas: list[tuple[float, int]], notches: list[int]) -> None:
    wheel = WheelNotches()
    assert [wheel.add(dy, mode) for dy, mode in deltas] == notches


@pytest.mark.parametrize(("combo", "events"), [
    ("ctrl-alt-delete", ["1d", "38", "e053", "e0d3", "b8", "9d"]),
    ("ctrl-c", ["1d", "2e", "ae", "9d"]),
    ("esc", ["01", "81"]),
    ("tab", ["0f", "8f"]),
    ("f1", ["3b", "bb"]),
    ("f12", ["58", "d8"]),
])
def test_special_keys_are_key_events_one_at_a_time(combo: str, events: list[str]) -> None:
    assert [e.hex() for e in combo_key_events(combo)] == events


def test_every_special_key_button_has_a_combo_that_parses() -> None:
    labels = [label for label, _ in SPECIAL_KEYS]
    assert labels[:3] == ["Ctrl-Alt-Del", "Esc", "Tab"] and "Ctrl-C" in labels
    assert [f"F{n}" for n in range(1, 13)] == [x for x in labels if x.startswith("F")]
    for _, combo in SPECIAL_KEYS:
        assert combo_key_events(combo)


def test_a_bad_special_key_is_an_invalid_argument() -> None:
    with pytest.raises(InvalidArgument, match="nosuchkey"):
        combo_key_events("ctrl-nosuchkey")


# --- PointerPlacer on a real InputsProtocol -----------------------------------------------


def sent(inputs: InputsProtocol) -> list[tuple[int, tuple[int, ...]]]:
    reader = MessageReader()
    reader.feed(inputs.data_to_send())
    out = []
    for message in reader.read_messages():
        out.append((message.msg_type, _fields(message)))
    return out


def _fields(message: RawMessage) -> tuple[int, ...]:
    if message.msg_type == MOTION:
        return struct.unpack("<iiH", message.body)
    if message.msg_type == POSITION:
        return struct.unpack("<IIHB", message.body)[:3]
    return struct.unpack("<BH", message.body)


def inputs() -> InputsProtocol:
    # room for every motion: flow control is InputsProtocol's own test
    return InputsProtocol(ChannelType.INPUTS, 0, max_unacked_motions=100)


def test_client_mode_drag_is_absolute_positions_with_the_button_held() -> None:
    chan, placer = inputs(), PointerPlacer()
    placer.place(chan, MouseMode.CLIENT, 10, 20)
    chan.button_press(MouseButton.LEFT)
    placer.place(chan, MouseMode.CLIENT, 30, 40)
    placer.place(chan, MouseMode.CLIENT, 50, 60)
    chan.button_release(MouseButton.LEFT)
    assert sent(chan) == [(POSITION, (10, 20, 0)), (PRESS, (1, 1)), (POSITION, (30, 40, 1)),
                          (POSITION, (50, 60, 1)), (RELEASE, (1, 0))]


def test_server_mode_pins_the_pointer_but_drags_by_differences() -> None:
    chan, placer = inputs(), PointerPlacer()
    placer.place(chan, MouseMode.SERVER, 40, 30)
    chan.button_press(MouseButton.LEFT)
    placer.place(chan, MouseMode.SERVER, 50, 25)  # held: relative, no pin to the corner
    chan.button_release(MouseButton.LEFT)
    placer.place(chan, MouseMode.SERVER, 5, 5)  # free again: pinned first
    home = (HOME_MOTION, HOME_MOTION, 0)
    assert sent(chan) == [(MOTION, home), (MOTION, (40, 30, 0)), (PRESS, (1, 1)),
                          (MOTION, (10, -5, 1)), (RELEASE, (1, 0)), (MOTION, home),
                          (MOTION, (5, 5, 0))]


def test_server_mode_on_a_new_channel_pins_even_with_a_button_held() -> None:
    old, new, placer = inputs(), inputs(), PointerPlacer()
    placer.place(old, MouseMode.SERVER, 40, 30)
    new.button_press(MouseButton.LEFT)
    placer.place(new, MouseMode.SERVER, 50, 30)  # where the pointer is on it is unknown
    assert sent(new)[1:] == [(MOTION, (HOME_MOTION, HOME_MOTION, 1)), (MOTION, (50, 30, 1))]
